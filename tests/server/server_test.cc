// End-to-end tests of the HTTP server (SPEC §3) on a real socket: in-process servers on port 0
// for the routes, and the usagedb binary in a child process for settings, exit codes and
// signals.
#include <fcntl.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "export/parquet_test_reader.h"
#include "export/parquet_thrift.h"
#include "gtest/gtest.h"
#include "io/mem_file_system.h"
#include "server/api.h"
#include "server/api_keys.h"
#include "server/gzip.h"
#include "server/http_server.h"
#include "server/settings.h"
#include "tests/server/http_client.h"
#include "usagedb/db.h"

extern char** environ;

namespace usagedb {
namespace server {
namespace {

using testing::ClientResponse;
using testing::HttpClient;

constexpr int64_t kMay1 = 1777593600000;  // 2026-05-01T00:00:00Z
constexpr int64_t kDayMs = 86400000;
const char kMax38[] = "99999999999999999999999999999999999999";  // 10^38 - 1

std::string TempDir(const std::string& name) {
  std::string dir =
      ::testing::TempDir() + "usagedb_server_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// One event object; `qty` is a JSON literal (5, "5", "-3").
std::string Ev(const std::string& id, const std::string& account, const std::string& qty,
               int64_t ts = kMay1 + 1000, const std::string& extra = "") {
  return "{\"event_id\":\"" + id + "\",\"account_id\":\"" + account +
         "\",\"product_id\":\"ai_gateway\",\"meter_id\":\"tokens.input\",\"timestamp_ms\":" +
         std::to_string(ts) + ",\"quantity\":" + qty + ",\"unit\":\"token\",\"source\":\"test\"" +
         extra + "}";
}

std::string Batch(const std::vector<std::string>& events) {
  std::string b = "{\"events\":[";
  for (size_t i = 0; i < events.size(); i++) b += (i ? "," : "") + events[i];
  return b + "]}";
}

// A parsed JSON response body.
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  bool ok = false;
  explicit Json(const std::string& text) { ok = !parser.parse(text).get(root); }
  std::string Str(const char* pointer) {
    std::string_view v;
    if (root.at_pointer(pointer).get(v)) return "<missing " + std::string(pointer) + ">";
    return std::string(v);
  }
  int64_t Int(const char* pointer) {
    int64_t v = -1;
    if (root.at_pointer(pointer).get(v)) return -999;
    return v;
  }
  bool IsNull(const char* pointer) {
    simdjson::dom::element e;
    return !root.at_pointer(pointer).get(e) && e.is_null();
  }
  size_t Size(const char* pointer) {
    simdjson::dom::array a;
    if (root.at_pointer(pointer).get(a)) return 999;
    return a.size();
  }
};

// The code of a JSON error response, checking the SPEC §3 shape on the way.
std::string ErrorCode(const ClientResponse& r) {
  Json j(r.body);
  if (!j.ok) return "<not JSON: " + r.body + ">";
  std::string message = j.Str("/error/message");
  if (message.empty() || message.rfind("<missing", 0) == 0) return "<no message: " + r.body + ">";
  return j.Str("/error/code");
}

// ---------------------------------------------------------------------------------------
// In-process server fixture.

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    StopServer();
    std::filesystem::remove_all(dir_);
  }

  // `wrap`, when given, puts a test DB in front of the real one (the server sees only it).
  void StartServer(ServerSettings settings = ServerSettings(), ApiKeys keys = ApiKeys(),
                   const std::function<std::unique_ptr<DB>(DB*)>& wrap = nullptr) {
    settings.db_root = dir_ + "/db";
    Options o = settings.ToDbOptions();
    auto db = DB::Open(o, settings.db_root);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    if (wrap) wrapper_ = wrap(db_.get());
    api_ = std::make_unique<ApiService>(wrapper_ ? wrapper_.get() : db_.get(), settings,
                                        std::move(keys));
    HttpServerOptions h;
    h.port = 0;
    h.threads = 2;
    h.max_body_bytes = settings.max_body_bytes;
    h.request_timeout_ms = settings.request_timeout_ms;
    auto server = HttpServer::Start(h, api_.get(), &api_->metrics());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    client_ = std::make_unique<HttpClient>("127.0.0.1", server_->port());
  }

  void StopServer() {
    client_.reset();
    if (server_) {
      server_->Shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      server_->Join(std::chrono::steady_clock::now() + std::chrono::seconds(30));
      server_.reset();
    }
    api_.reset();
    wrapper_.reset();
    if (db_) db_->Close().IgnoreError();
    db_.reset();
  }

  ClientResponse Post(const std::string& target, const std::string& body,
                      const std::string& content_type = "application/json",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
    return client_->Request("POST", target, body, headers);
  }
  ClientResponse Get(const std::string& target,
                     const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return client_->Request("GET", target, {}, headers);
  }
  // Quantity and count of the usage line of `query` (a 200 answer is asserted).
  std::pair<std::string, int64_t> Usage(const std::string& account, const std::string& query = "") {
    ClientResponse r =
        Get("/v1/accounts/" + account + "/usage" + (query.empty() ? "" : "?" + query));
    EXPECT_EQ(200, r.status) << r.body;
    Json j(r.body);
    EXPECT_EQ(1u, j.Size("/lines")) << r.body;
    return {j.Str("/lines/0/quantity"), j.Int("/lines/0/count")};
  }
  bool Healthy() {
    HttpClient c("127.0.0.1", server_->port());
    ClientResponse r = c.Request("GET", "/health");
    return r.status == 200 && r.body == "{\"status\":\"ok\"}";
  }

  std::string dir_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<DB> wrapper_;
  std::unique_ptr<ApiService> api_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

// --- routing and error shapes -----------------------------------------------------------

TEST_F(ServerTest, HealthAnswersOk) {
  StartServer();
  ClientResponse r = Get("/health");
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("{\"status\":\"ok\"}", r.body);
  EXPECT_EQ("application/json", r.Header("content-type"));
}

TEST_F(ServerTest, UnknownPathIs404WithJsonError) {
  StartServer();
  ClientResponse r = Get("/v2/nothing");
  EXPECT_EQ(404, r.status);
  EXPECT_EQ("not_found", ErrorCode(r));
  EXPECT_EQ(404, Get("/v1/accounts/a/usage/").status);  // trailing slash is another path
  EXPECT_EQ(404, Get("/v1/accounts//usage").status);    // an empty id matches nothing
}

TEST_F(ServerTest, WrongMethodOnKnownPathIs405WithAllow) {
  StartServer();
  ClientResponse r = Get("/v1/usage/batch");
  EXPECT_EQ(405, r.status);
  EXPECT_EQ("method_not_allowed", ErrorCode(r));
  EXPECT_EQ("POST", r.Header("allow"));
  r = Post("/health", "");
  EXPECT_EQ(405, r.status);
  EXPECT_EQ("GET", r.Header("allow"));
}

TEST_F(ServerTest, RoutesOfLaterIssuesAre501NamingTheIssue) {
  StartServer();
  ClientResponse r = Get("/v1/accounts/a/explain");
  EXPECT_EQ(501, r.status);
  EXPECT_EQ("not_implemented", ErrorCode(r));
  EXPECT_NE(std::string::npos, r.body.find("issue")) << r.body;
  EXPECT_NE(501, Get("/v1/export/parquet").status);  // built: see the ExportParquet tests
  EXPECT_EQ(501, Post("/v1/accounts/a/periods/2026-05/close", "").status);
  EXPECT_EQ(501, Get("/v1/accounts/a/verify").status);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  StartServer();
  for (int i = 0; i < 5; i++) {
    ClientResponse r = Post("/v1/usage/batch", Batch({Ev("ka" + std::to_string(i), "a", "1")}));
    ASSERT_EQ(200, r.status) << r.body;
    ASSERT_EQ(200, Get("/health").status);
  }
  EXPECT_EQ(1, client_->connects());
  EXPECT_EQ("5", Usage("a").first);
  EXPECT_EQ(1, client_->connects());
}

TEST_F(ServerTest, ConnectionCloseIsHonoured) {
  StartServer();
  ClientResponse r = Get("/health", {{"Connection", "close"}});
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("close", r.Header("connection"));
  EXPECT_FALSE(client_->connected());
}

// --- ingest -----------------------------------------------------------------------------

TEST_F(ServerTest, BatchReportsCountsSequenceAndNonAcceptedResults) {
  StartServer();
  ClientResponse r =
      Post("/v1/usage/batch", Batch({Ev("e1", "a", "5"), Ev("e2", "a", "-1"), Ev("e1", "a", "5"),
                                     Ev("e1", "a", "6"), Ev("e3", "a", "\"7\"")}));
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  ASSERT_TRUE(j.ok) << r.body;
  EXPECT_EQ(2, j.Int("/accepted"));
  EXPECT_EQ(1, j.Int("/duplicates"));
  EXPECT_EQ(1, j.Int("/conflicts"));
  EXPECT_EQ(1, j.Int("/rejected"));
  EXPECT_GT(j.Int("/commit_sequence"), 0);
  ASSERT_EQ(3u, j.Size("/results")) << r.body;
  EXPECT_EQ(1, j.Int("/results/0/index"));
  EXPECT_EQ("e2", j.Str("/results/0/event_id"));
  EXPECT_EQ("rejected", j.Str("/results/0/status"));
  EXPECT_EQ("quantity: Usage requires quantity >= 0", j.Str("/results/0/reason"));
  EXPECT_EQ(2, j.Int("/results/1/index"));
  EXPECT_EQ("duplicate", j.Str("/results/1/status"));
  EXPECT_EQ(3, j.Int("/results/2/index"));
  EXPECT_EQ("conflict", j.Str("/results/2/status"));
  EXPECT_EQ("12", Usage("a").first);
}

TEST_F(ServerTest, BatchResultsAllListsEveryEvent) {
  StartServer();
  ClientResponse r =
      Post("/v1/usage/batch?results=all", Batch({Ev("x1", "a", "1"), Ev("x2", "a", "2")}));
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  ASSERT_EQ(2u, j.Size("/results"));
  EXPECT_EQ("accepted", j.Str("/results/0/status"));
  EXPECT_EQ("x2", j.Str("/results/1/event_id"));
  EXPECT_EQ(400, Post("/v1/usage/batch?results=some", Batch({})).status);
  EXPECT_EQ("unknown_parameter", ErrorCode(Post("/v1/usage/batch?bogus=1", Batch({}))));
}

TEST_F(ServerTest, AllRejectedBatchIsStill200) {
  StartServer();
  ClientResponse r = Post("/v1/usage/batch", Batch({"{\"event_id\":\"only\"}", "5"}));
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  EXPECT_EQ(2, j.Int("/rejected"));
  EXPECT_EQ(0, j.Int("/accepted"));
}

TEST_F(ServerTest, NdjsonSkipsBlankLinesAndRejectsNonObjects) {
  StartServer();
  std::string body =
      "\n" + Ev("n1", "a", "1") + "\n   \n\r\n" + "not json\n" + Ev("n2", "a", "2") + "\r\n\t\n";
  ClientResponse r = Post("/v1/usage/batch", body, "application/x-ndjson; charset=utf-8");
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  EXPECT_EQ(2, j.Int("/accepted"));
  EXPECT_EQ(1, j.Int("/rejected"));
  ASSERT_EQ(1u, j.Size("/results"));
  EXPECT_EQ(1, j.Int("/results/0/index"));  // among non-empty lines
  EXPECT_EQ(0u, j.Str("/results/0/reason").rfind("invalid JSON", 0)) << r.body;
  EXPECT_EQ("3", Usage("a").first);
}

TEST_F(ServerTest, UnusableBodyIs400AndWritesNothing) {
  StartServer();
  for (const char* body : {"not json", "[]", "{\"evts\":[]}", "{\"events\":{}}", ""}) {
    ClientResponse r = Post("/v1/usage/batch", body);
    EXPECT_EQ(400, r.status) << body << " -> " << r.body;
    EXPECT_EQ("invalid_body", ErrorCode(r)) << body;
  }
  EXPECT_EQ(0, Usage("a").second);
}

TEST_F(ServerTest, MediaTypeRulesGive415) {
  StartServer();
  std::string b = Batch({Ev("m1", "a", "1")});
  EXPECT_EQ(200, Post("/v1/usage/batch", b, "").status);  // missing = JSON
  EXPECT_EQ(200, Post("/v1/usage/batch", b, "application/json; charset=UTF-8").status);
  EXPECT_EQ(200, Post("/v1/usage/batch", b, "Application/JSON").status);
  for (const char* ct : {"text/plain", "application/json; charset=latin1", "application/xml",
                         "multipart/form-data"}) {
    ClientResponse r = Post("/v1/usage/batch", b, ct);
    EXPECT_EQ(415, r.status) << ct;
    EXPECT_EQ("unsupported_media_type", ErrorCode(r));
  }
  // Routes without a body ignore the Content-Type.
  EXPECT_EQ(200, Post("/v1/admin/flush", "", "text/plain").status);
}

TEST_F(ServerTest, MoreThan100000EventsIs413TooManyEvents) {
  StartServer();
  std::string body;
  body.reserve(300000 * 3);
  for (size_t i = 0; i <= kMaxBatchEvents; i++) body += "{}\n";
  ClientResponse r = Post("/v1/usage/batch", body, "application/x-ndjson");
  EXPECT_EQ(413, r.status);
  EXPECT_EQ("too_many_events", ErrorCode(r));
  // Exactly the limit is fine (every event rejected, the batch processed).
  body.resize(body.size() - 3);
  r = Post("/v1/usage/batch", body, "application/x-ndjson");
  EXPECT_EQ(200, r.status);
  EXPECT_EQ(static_cast<int64_t>(kMaxBatchEvents), Json(r.body).Int("/rejected"));
}

TEST_F(ServerTest, BodyOverMaxBodyBytesIs413AndTheServerGoesOn) {
  ServerSettings s;
  s.max_body_bytes = 4096;
  StartServer(s);
  std::string big = Batch(
      {Ev("big", "a", "1", kMay1, ",\"dimensions\":{\"pad\":\"" + std::string(200, 'x') + "\"}")});
  while (big.size() <= 4096) big.insert(big.size() - 1, " ");
  ClientResponse r = Post("/v1/usage/batch", big);
  EXPECT_EQ(413, r.status);
  EXPECT_EQ("body_too_large", ErrorCode(r));
  EXPECT_TRUE(Healthy());
  EXPECT_EQ(0, Usage("a").second);
}

TEST_F(ServerTest, GzipBodyIsInflated) {
  StartServer();
  std::string body = Batch({Ev("g1", "a", "3"), Ev("g2", "a", "4")});
  ClientResponse r = Post("/v1/usage/batch", GzipCompress(body), "application/json",
                          {{"Content-Encoding", "gzip"}});
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(2, Json(r.body).Int("/accepted"));
  // Two concatenated members are one body.
  std::string nd1 = Ev("g3", "a", "10") + "\n", nd2 = Ev("g4", "a", "20") + "\n";
  r = Post("/v1/usage/batch", GzipCompress(nd1) + GzipCompress(nd2), "application/x-ndjson",
           {{"Content-Encoding", "gzip"}});
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(2, Json(r.body).Int("/accepted"));
  EXPECT_EQ("37", Usage("a").first);
}

TEST_F(ServerTest, GzipBombIs413WithoutInflatingItAll) {
  ServerSettings s;
  s.max_body_bytes = 1 << 20;
  StartServer(s);
  std::string bomb = GzipCompress(std::string(256u << 20, ' '));  // 256 MiB → ~256 KiB
  ASSERT_LT(bomb.size(), s.max_body_bytes);
  ClientResponse r =
      Post("/v1/usage/batch", bomb, "application/json", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(413, r.status);
  EXPECT_EQ("body_too_large", ErrorCode(r));
  // The inflater never holds more than the limit plus one chunk.
  std::string out, error;
  EXPECT_EQ(InflateOutcome::kTooLarge, GzipInflate(bomb, 1 << 20, &out, &error));
  EXPECT_TRUE(Healthy());
}

TEST_F(ServerTest, MalformedGzipIs400AndUnknownEncodingIs415) {
  StartServer();
  std::string gz = GzipCompress(Batch({Ev("t1", "a", "1")}));
  ClientResponse r = Post("/v1/usage/batch", gz.substr(0, gz.size() - 10), "application/json",
                          {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("invalid_gzip", ErrorCode(r));
  r = Post("/v1/usage/batch", "garbage", "application/json", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(400, r.status);
  r = Post("/v1/usage/batch", Batch({}), "application/json", {{"Content-Encoding", "br"}});
  EXPECT_EQ(415, r.status);
  EXPECT_EQ(0, Usage("a").second);
}

TEST_F(ServerTest, WalUnavailableIs503WithRetryAfter) {
  StartServer();
  ASSERT_TRUE(db_->Close().ok());
  ClientResponse r = Post("/v1/usage/batch", Batch({Ev("late", "a", "1")}));
  EXPECT_EQ(503, r.status);
  EXPECT_EQ("unavailable", ErrorCode(r));
  EXPECT_EQ("1", r.Header("retry-after"));
}

// --- usage ------------------------------------------------------------------------------

TEST_F(ServerTest, UsageSumsAre38DigitExact) {
  StartServer();
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch({Ev("big1", "a", std::string("\"") + kMax38 + "\""),
                                                Ev("big2", "a", "1")}))
                     .status);
  EXPECT_EQ("100000000000000000000000000000000000000", Usage("a").first);
  // Another 10^38-1 takes the sum past 2^127-1: 422 overflow, never a wrap.
  ASSERT_EQ(
      200,
      Post("/v1/usage/batch", Batch({Ev("big3", "a", std::string("\"") + kMax38 + "\"")})).status);
  ClientResponse r = Get("/v1/accounts/a/usage");
  EXPECT_EQ(422, r.status) << r.body;
  EXPECT_EQ("overflow", ErrorCode(r));
  // A retraction brings the exact result back in range, whatever the order of the events.
  ASSERT_EQ(200, Post("/v1/usage/batch",
                      Batch({Ev("fix", "a", std::string("\"-") + kMax38 + "\"", kMay1 + 1000,
                                ",\"kind\":\"Retraction\",\"correction_ref\":{"
                                "\"original_event_id\":\"big3\"}")}))
                     .status);
  EXPECT_EQ("100000000000000000000000000000000000000", Usage("a").first);
}

TEST_F(ServerTest, UsageRangeIsHalfOpenAndEchoed) {
  StartServer();
  const int64_t from = kMay1, to = kMay1 + kDayMs;
  ASSERT_EQ(
      200, Post("/v1/usage/batch", Batch({Ev("r0", "a", "1", from - 1), Ev("r1", "a", "10", from),
                                          Ev("r2", "a", "100", to - 1), Ev("r3", "a", "1000", to)}))
               .status);
  EXPECT_EQ("110", Usage("a", "from=2026-05-01&to=2026-05-02").first);
  EXPECT_EQ("110", Usage("a", "from=" + std::to_string(from) + "&to=" + std::to_string(to)).first);
  EXPECT_EQ("110", Usage("a", "from=2026-05-01T02:00:00%2B02:00&to=2026-05-02T00:00:00Z").first);
  EXPECT_EQ("1110", Usage("a", "from=2026-05-01").first);
  EXPECT_EQ("1111", Usage("a").first);
  auto empty = Usage("a", "from=2026-05-01&to=2026-05-01");
  EXPECT_EQ("0", empty.first);
  EXPECT_EQ(0, empty.second);
  ClientResponse r = Get("/v1/accounts/a/usage?from=2026-05-01");
  Json j(r.body);
  EXPECT_EQ("a", j.Str("/account_id"));
  EXPECT_EQ("2026-05-01T00:00:00Z", j.Str("/from"));
  EXPECT_TRUE(j.IsNull("/to"));
  EXPECT_TRUE(j.IsNull("/watermark_ms"));
}

TEST_F(ServerTest, UsageOfUnknownAccountIsOneZeroLine) {
  StartServer();
  auto u = Usage("nobody");
  EXPECT_EQ("0", u.first);
  EXPECT_EQ(0, u.second);
}

TEST_F(ServerTest, UsageBadRangeAndParametersAre400) {
  StartServer();
  ClientResponse r = Get("/v1/accounts/a/usage?from=2026-05-02&to=2026-05-01");
  EXPECT_EQ(400, r.status);
  r = Get("/v1/accounts/a/usage?from=yesterday");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("bad_date", ErrorCode(r));
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?from=2026-05-01&from=2026-05-02").status);
  r = Get("/v1/accounts/a/usage?group_by=event_id");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("invalid_argument", ErrorCode(r));
  r = Get("/v1/accounts/a/usage?source=rollup");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("not_in_rollups", ErrorCode(r));
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?source=cache").status);
  EXPECT_EQ(200, Get("/v1/accounts/a/usage?source=raw").status);
  EXPECT_EQ(200, Get("/v1/accounts/a/usage?source=auto").status);
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?time_zone=Europe/Paris").status);
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?kind=Refund").status);
  EXPECT_EQ("unknown_parameter", ErrorCode(Get("/v1/accounts/a/usage?limit=5")));
  // A misspelt parameter is an error, not a dimension filter that silently matches nothing.
  EXPECT_EQ("unknown_parameter", ErrorCode(Get("/v1/accounts/a/usage?form=2026-05-01")));
  EXPECT_EQ("unknown_parameter", ErrorCode(Get("/v1/accounts/a/usage?provider=openai")));
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?dim.event_id=x").status);  // reserved name
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?from=%zz").status);
  EXPECT_EQ(400, Get("/v1/accounts/a%zz/usage").status);
}

TEST_F(ServerTest, UsageFiltersByColumnsKindAndDimensions) {
  StartServer();
  auto ev = [](const std::string& id, const std::string& qty, const std::string& meter,
               const std::string& model, const std::string& dims) {
    return "{\"event_id\":\"" + id +
           "\",\"account_id\":\"acc/1\",\"product_id\":\"p\",\"meter_id\":\"" + meter +
           "\",\"model_id\":" + model + ",\"timestamp_ms\":" + std::to_string(kMay1) +
           ",\"quantity\":" + qty + ",\"unit\":\"token\",\"source\":\"s\",\"dimensions\":" + dims +
           "}";
  };
  ASSERT_EQ(200,
            Post("/v1/usage/batch",
                 Batch({ev("f1", "1", "in", "\"m1\"", "{\"provider\":\"anthropic\"}"),
                        ev("f2", "2", "out", "\"m1\"", "{\"provider\":\"openai\"}"),
                        ev("f3", "4", "in", "\"m2\"", "{\"provider\":\"openai\",\"tool\":\"x\"}"),
                        ev("f4", "8", "in", "null", "{}")}))
                .status);
  const std::string acc = "acc%2F1";  // an id with a slash, percent-encoded in the path
  EXPECT_EQ("15", Usage(acc).first);
  EXPECT_EQ("13", Usage(acc, "meter_id=in").first);
  EXPECT_EQ("15", Usage(acc, "meter_id=in&meter_id=out").first);
  EXPECT_EQ("3", Usage(acc, "model_id=m1").first);
  EXPECT_EQ("0", Usage(acc, "product_id=other").first);
  EXPECT_EQ("15", Usage(acc, "kind=usage").first);
  EXPECT_EQ("0", Usage(acc, "kind=Correction").first);
  EXPECT_EQ("6", Usage(acc, "dim.provider=openai").first);
  EXPECT_EQ("7", Usage(acc, "dim.provider=openai&dim.provider=anthropic").first);
  EXPECT_EQ("4", Usage(acc, "dim.provider=openai&dim.tool=x").first);
  EXPECT_EQ("4", Usage(acc, "dim.provider=openai&meter_id=in").first);
  EXPECT_EQ("0", Usage(acc, "dim.missing=x").first);
}

TEST_F(ServerTest, UsageAsOfReproducesAnEarlierAnswer) {
  StartServer();
  ClientResponse r = Post("/v1/usage/batch", Batch({Ev("s1", "a", "5")}));
  ASSERT_EQ(200, r.status);
  int64_t seq1 = Json(r.body).Int("/commit_sequence");
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch({Ev("s2", "a", "7")})).status);
  EXPECT_EQ("5", Usage("a", "as_of=" + std::to_string(seq1)).first);
  EXPECT_EQ("12", Usage("a").first);
  // A duplicate's commit_sequence covers the stored event.
  r = Post("/v1/usage/batch", Batch({Ev("s1", "a", "5")}));
  EXPECT_EQ("12",
            Usage("a", "as_of=" + std::to_string(Json(r.body).Int("/commit_sequence"))).first);
  EXPECT_EQ("12",
            Usage("a", "as_of_ms=" +
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()))
                .first);
  EXPECT_EQ("0", Usage("a", "as_of_ms=2020-01-01").first);
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?as_of=999999").status);
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?as_of=1&as_of_ms=1").status);
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?as_of_ms=2999-01-01").status);
  EXPECT_EQ(400, Get("/v1/accounts/a/usage?as_of=-1").status);
}

// --- operations -------------------------------------------------------------------------

TEST_F(ServerTest, MetricsArePrometheusText) {
  StartServer();
  ASSERT_EQ(200, Post("/v1/usage/batch",
                      Batch({Ev("mx1", "a", "1"), Ev("mx1", "a", "1"), Ev("mx2", "a", "-1")}))
                     .status);
  ClientResponse r = Get("/metrics");
  ASSERT_EQ(200, r.status);
  EXPECT_EQ(0u, r.Header("content-type").rfind("text/plain", 0));
  for (const char* line :
       {"usagedb_ingest_events_total{outcome=\"accepted\"} 1\n",
        "usagedb_ingest_events_total{outcome=\"duplicate\"} 1\n",
        "usagedb_ingest_events_total{outcome=\"rejected\"} 1\n", "usagedb_ingest_batches_total 1\n",
        "# TYPE usagedb_wal_fsync_latency_seconds summary\n", "usagedb_memtable_bytes ",
        "usagedb_segments 0\n",
        "usagedb_http_requests_total{route=\"usage_batch\",status=\"200\"} 1\n",
        "usagedb_http_request_duration_seconds_bucket{route=\"usage_batch\",le=\"+Inf\"} 1\n"}) {
    EXPECT_NE(std::string::npos, r.body.find(line)) << line << "\n" << r.body;
  }
}

TEST_F(ServerTest, AdminFlushWritesSegmentsAndAnswersSummary) {
  StartServer();
  ClientResponse r = Post("/v1/usage/batch", Batch({Ev("af1", "a", "2"), Ev("af2", "b", "3")}));
  ASSERT_EQ(200, r.status);
  int64_t seq = Json(r.body).Int("/commit_sequence");
  r = Post("/v1/admin/flush", "");
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  EXPECT_EQ(seq, j.Int("/flushed_sequence"));
  EXPECT_GE(j.Int("/segment_count"), 1);
  EXPECT_EQ("2", Usage("a").first);
  EXPECT_EQ("3", Usage("b").first);
}

// --- API keys ---------------------------------------------------------------------------

TEST_F(ServerTest, ApiKeysGive401And403AndLeaveHealthOpen) {
  auto hex = [](const std::array<uint8_t, 32>& d) {
    std::string s;
    char buf[3];
    for (uint8_t b : d) {
      std::snprintf(buf, sizeof(buf), "%02x", b);
      s += buf;
    }
    return s;
  };
  auto keys = ApiKeys::Parse(
      "{\"keys\":[{\"key\":\"ingest-secret\",\"scopes\":[\"ingest\"]},"
      "{\"key\":\"reader\",\"scopes\":[\"read\"]},"
      "{\"key_sha256\":\"" +
          hex(Sha256("admin-secret")) + "\",\"scopes\":[\"admin\",\"read\"]}]}",
      "test");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  StartServer(ServerSettings(), std::move(keys).value());
  auto bearer = [](const std::string& k) {
    return std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer " + k}};
  };
  std::string b = Batch({Ev("k1", "a", "4")});
  ClientResponse r = Post("/v1/usage/batch", b);
  EXPECT_EQ(401, r.status);
  EXPECT_EQ("unauthorized", ErrorCode(r));
  EXPECT_EQ("Bearer", r.Header("www-authenticate"));
  EXPECT_EQ(401, Post("/v1/usage/batch", b, "application/json", bearer("wrong")).status);
  EXPECT_EQ(401, Post("/v1/usage/batch", b, "application/json",
                      {{"Authorization", "Basic aW5nZXN0LXNlY3JldA=="}})
                     .status);
  r = Post("/v1/usage/batch", b, "application/json", bearer("reader"));
  EXPECT_EQ(403, r.status);
  EXPECT_EQ("forbidden", ErrorCode(r));
  EXPECT_EQ(200, Post("/v1/usage/batch", b, "application/json", bearer("ingest-secret")).status);
  EXPECT_EQ(403, Get("/v1/accounts/a/usage", bearer("ingest-secret")).status);
  EXPECT_EQ(401, Get("/v1/accounts/a/usage").status);
  r = Get("/v1/accounts/a/usage", bearer("reader"));
  EXPECT_EQ(200, r.status);
  EXPECT_EQ("4", Json(r.body).Str("/lines/0/quantity"));
  EXPECT_EQ(401, Get("/metrics").status);
  EXPECT_EQ(200, Get("/metrics", bearer("reader")).status);
  EXPECT_EQ(403, Post("/v1/admin/flush", "", "", bearer("reader")).status);
  EXPECT_EQ(200, Post("/v1/admin/flush", "", "", bearer("admin-secret")).status);
  EXPECT_EQ(200, Get("/v1/accounts/a/usage", bearer("admin-secret")).status);
  EXPECT_EQ(200, Get("/health").status);
}

TEST(ApiKeysTest, BadFilesAreRefusedNamingTheProblem) {
  struct Case {
    const char* json;
    const char* fragment;
  } cases[] = {
      {"nope", "not JSON"},
      {"{\"keys\":[{\"key\":\"a\",\"scopes\":[\"root\"]}]}", "unknown scope 'root'"},
      {"{\"keys\":[{\"key\":\"a\",\"key_sha256\":\"00\",\"scopes\":[]}]}", "key_sha256"},
      {"{\"keys\":[{\"scopes\":[\"read\"]}]}", "exactly one of key, key_sha256"},
      {"{\"keys\":[{\"key_sha256\":\"xyz\",\"scopes\":[\"read\"]}]}", "64 hex digits"},
      {"{\"keys\":[{\"key\":\"a\"}]}", "needs scopes"},
      {"{\"keys\":[{\"key\":\"a\",\"scopes\":[\"read\"],\"note\":1}]}", "unknown field 'note'"},
      {"{\"users\":[]}", "unknown field 'users'"},
  };
  for (const Case& c : cases) {
    auto k = ApiKeys::Parse(c.json, "f.json");
    ASSERT_FALSE(k.ok()) << c.json;
    EXPECT_TRUE(k.status().IsInvalidArgument());
    EXPECT_NE(std::string::npos, k.status().message().find(c.fragment))
        << c.json << " -> " << k.status().ToString();
  }
}

// --- robustness -------------------------------------------------------------------------

TEST_F(ServerTest, GarbageBytesHugeHeadersAndDeepNestingLeaveTheServerAnswering) {
  StartServer();
  {
    HttpClient c("127.0.0.1", server_->port());
    const char kGarbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    ASSERT_TRUE(c.SendRaw(std::string(kGarbage, sizeof(kGarbage) - 1)));
    ClientResponse r = c.ReadResponse();
    EXPECT_EQ(400, r.status);
    EXPECT_EQ("bad_request", ErrorCode(r));
  }
  EXPECT_TRUE(Healthy());
  {
    HttpClient c("127.0.0.1", server_->port());
    // The server answers after 64 KiB and drains the rest before closing.
    ASSERT_TRUE(
        c.SendRaw("GET /health HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n"));
    ClientResponse r = c.ReadResponse();
    EXPECT_EQ(431, r.status);
    EXPECT_EQ("headers_too_large", ErrorCode(r));
  }
  EXPECT_TRUE(Healthy());
  {
    std::string deep = "{\"events\":[" + std::string(100000, '[') + std::string(100000, ']') + "]}";
    ClientResponse r = Post("/v1/usage/batch", deep);
    EXPECT_TRUE(r.status == 400 || r.status == 200) << r.status << " " << r.body.substr(0, 200);
    std::string deep_event =
        "{\"events\":[{\"dimensions\":" + std::string(50000, '[') + std::string(50000, ']') + "}]}";
    r = Post("/v1/usage/batch", deep_event);
    EXPECT_TRUE(r.status == 400 || r.status == 200) << r.status;
    std::string deep_nd = std::string(100000, '{') + "\n";
    r = Post("/v1/usage/batch", deep_nd, "application/x-ndjson");
    EXPECT_EQ(200, r.status);
    EXPECT_EQ(1, Json(r.body).Int("/rejected"));
  }
  EXPECT_TRUE(Healthy());
  {
    HttpClient c("127.0.0.1", server_->port());
    ASSERT_TRUE(
        c.SendRaw("POST /v1/usage/batch HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"));
    ClientResponse r = c.ReadResponse();
    EXPECT_EQ(400, r.status) << r.body;
  }
  {
    // A request cut off half-way, then the connection closed.
    HttpClient c("127.0.0.1", server_->port());
    ASSERT_TRUE(c.SendRaw("POST /v1/usage/batch HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"ev"));
  }
  EXPECT_TRUE(Healthy());
}

TEST_F(ServerTest, ExpectContinueIsAnswered) {
  StartServer();
  HttpClient c("127.0.0.1", server_->port());
  std::string body = Batch({Ev("ec1", "a", "9")});
  ASSERT_TRUE(
      c.SendRaw("POST /v1/usage/batch HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Type: application/json\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n"));
  ASSERT_TRUE(c.SendRaw(body));
  ClientResponse r = c.ReadResponse();  // skips the interim 100
  EXPECT_EQ(200, r.status) << r.body;
  EXPECT_EQ("9", Usage("a").first);
}

// --- shutdown (HttpServer directly, with a handler the test controls) ---------------------

class BlockingHandler : public RequestHandler {
 public:
  void Handle(HttpRequest& request, HttpResponse* response) override {
    if (request.path == "/block") {
      std::unique_lock<std::mutex> l(mu_);
      entered_++;
      cv_.notify_all();
      cv_.wait(l, [&] { return released_; });
    }
    response->body = "{\"done\":\"" + request.path + "\"}";
  }
  void WaitEntered(int n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return entered_ >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool released_ = false;
};

TEST(HttpServerShutdownTest, InFlightRequestFinishesIdleConnectionsCloseNewOnesAreRefused) {
  BlockingHandler handler;
  HttpServerOptions o;
  o.port = 0;
  o.threads = 2;
  auto server_or = HttpServer::Start(o, &handler, nullptr);
  ASSERT_TRUE(server_or.ok());
  std::unique_ptr<HttpServer> server = std::move(server_or).value();
  const uint16_t port = server->port();

  HttpClient idle("127.0.0.1", port);
  ASSERT_EQ(200, idle.Request("GET", "/fast").status);  // kept alive, now idle
  HttpClient partial("127.0.0.1", port);
  ASSERT_TRUE(partial.SendRaw("POST /fast HTTP/1.1\r\nContent-Length: 10\r\n\r\n12"));

  ClientResponse in_flight;
  std::thread t([&] {
    HttpClient c("127.0.0.1", port);
    in_flight = c.Request("GET", "/block");
  });
  handler.WaitEntered(1);
  std::atomic<bool> shut{false};
  bool finished = false;
  std::thread stopper([&] {
    finished = server->Shutdown(std::chrono::steady_clock::now() + std::chrono::seconds(60));
    shut = true;
  });
  // Idle and half-received connections are dropped while the in-flight request runs on.
  EXPECT_TRUE(idle.PeerClosed(30000));
  EXPECT_TRUE(partial.PeerClosed(30000));
  EXPECT_FALSE(shut.load());
  handler.Release();
  t.join();
  stopper.join();
  EXPECT_TRUE(finished);
  EXPECT_EQ(200, in_flight.status);
  EXPECT_EQ("{\"done\":\"/block\"}", in_flight.body);
  EXPECT_EQ("close", in_flight.Header("connection"));
  EXPECT_TRUE(server->Join(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  HttpClient late("127.0.0.1", port);
  EXPECT_EQ(0, late.Request("GET", "/fast").status);
}

TEST(HttpServerShutdownTest, RequestsPastTheGraceAreAborted) {
  BlockingHandler handler;
  HttpServerOptions o;
  o.port = 0;
  o.threads = 2;
  auto server_or = HttpServer::Start(o, &handler, nullptr);
  ASSERT_TRUE(server_or.ok());
  std::unique_ptr<HttpServer> server = std::move(server_or).value();
  ClientResponse in_flight;
  in_flight.status = -1;
  std::thread t([&] {
    HttpClient c("127.0.0.1", server->port());
    in_flight = c.Request("GET", "/block");
  });
  handler.WaitEntered(1);
  EXPECT_FALSE(server->Shutdown(std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  handler.Release();
  t.join();
  EXPECT_EQ(0, in_flight.status);  // cut off: no response
  EXPECT_TRUE(server->Join(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
}

// --- settings ---------------------------------------------------------------------------

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(SettingsTest, DefaultsFollowTheSpec) {
  auto l = LoadSettings({}, Env({}));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  const ServerSettings& s = l->settings;
  EXPECT_EQ("./data", s.db_root);
  EXPECT_EQ("127.0.0.1", s.listen_host);
  EXPECT_EQ(8080, s.listen_port);
  EXPECT_EQ(Durability::kStrict, s.durability);
  EXPECT_EQ(64u, s.bucket_count);
  EXPECT_FALSE(s.bucket_count_set);
  EXPECT_EQ(64u << 20, s.memtable_bytes);
  EXPECT_EQ(5000, s.shutdown_grace_ms);
  EXPECT_EQ(33554432u, s.max_body_bytes);
  EXPECT_EQ("./data/checkpoints", s.checkpoint_root);
  EXPECT_EQ(0u, s.ToDbOptions().bucket_count);  // keep the database's own count
}

TEST(SettingsTest, FlagsWinOverEnvironmentWhichWinsOverTheFile) {
  std::string dir = TempDir("settings_precedence");
  WriteFile(dir + "/c.json",
            "{\"durability\":\"fast\",\"max_body_bytes\":2000,\"memtable_bytes\":100000,"
            "\"rollup_dimension_keys\":[\"provider\",\"region\"],\"bucket_count\":8}");
  auto l = LoadSettings({"--config", dir + "/c.json", "--max-body-bytes=3000"},
                        Env({{"USAGEDB_MAX_BODY_BYTES", "2500"},
                             {"USAGEDB_MEMTABLE_BYTES", "200000"},
                             {"USAGEDB_LISTEN", "0.0.0.0:9000"}}));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  const ServerSettings& s = l->settings;
  EXPECT_EQ(Durability::kFast, s.durability);  // file only
  EXPECT_EQ(3000u, s.max_body_bytes);          // flag > env > file
  EXPECT_EQ(200000u, s.memtable_bytes);        // env > file
  EXPECT_EQ(9000, s.listen_port);
  EXPECT_EQ("0.0.0.0", s.listen_host);
  EXPECT_EQ(8u, s.ToDbOptions().bucket_count);
  EXPECT_EQ((std::vector<std::string>{"provider", "region"}), s.rollup_dimension_keys);
  // The config file can come from USAGEDB_CONFIG too.
  l = LoadSettings({"--rollup-dimension-keys", "agent, tool"},
                   Env({{"USAGEDB_CONFIG", dir + "/c.json"}}));
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(2000u, l->settings.max_body_bytes);
  EXPECT_EQ((std::vector<std::string>{"agent", "tool"}), l->settings.rollup_dimension_keys);
  std::filesystem::remove_all(dir);
}

TEST(SettingsTest, BadValuesAndUnknownNamesAreRefusedNamingThem) {
  std::string dir = TempDir("settings_bad");
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string file;  // config file contents ("" = none)
    std::string fragment;
  } cases[] = {
      {{"--bogus", "1"}, {}, "", "unknown flag --bogus"},
      {{"--durability", "eventual"}, {}, "", "--durability: 'eventual' is not strict or fast"},
      {{"--shutdown-grace-ms", "9001"}, {}, "", "--shutdown-grace-ms"},
      {{"--max-body-bytes", "-5"}, {}, "", "negative value -5"},
      {{"--max-body-bytes", "12kb"}, {}, "", "'12kb' is not an integer"},
      {{"--listen", "localhost"}, {}, "", "not address:port"},
      {{"--listen", "example.com:80"}, {}, "", "not an IPv4 address"},
      {{"--listen", "127.0.0.1:70000"}, {}, "", "not in 0..65535"},
      {{"--memtable-bytes"}, {}, "", "needs a value"},
      {{"positional"}, {}, "", "unexpected argument"},
      {{}, {{"USAGEDB_BUCKET_COUNT", "0"}}, "", "USAGEDB_BUCKET_COUNT"},
      {{}, {{"USAGEDB_DEDUPE_WINDOW_DAYS", "x"}}, "", "USAGEDB_DEDUPE_WINDOW_DAYS"},
      {{}, {}, "{\"max_body_bytes\":\"2000\"}", "key max_body_bytes: must be an integer"},
      {{}, {}, "{\"max_body_bytes\":20.5}", "key max_body_bytes"},
      {{}, {}, "{\"durability\":1}", "key durability: must be a string"},
      {{}, {}, "{\"flush_interval_ms\":-1}", "key flush_interval_ms"},
      {{}, {}, "{\"max_body_byte\":1}", "key max_body_byte: unknown setting"},
      {{}, {}, "{\"rollup_dimension_keys\":\"provider\"}", "JSON array"},
      {{}, {}, "{\"rollup_dimension_keys\":[\"meter_id\"]}", "reserved name"},
      {{}, {}, "{\"rollup_dimension_keys\":[\"9bad\"]}", "not a valid dimension key"},
      {{}, {}, "[1]", "must be a JSON object"},
      {{}, {}, "{\"durability\":", "not JSON"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    if (!c.file.empty()) {
      WriteFile(dir + "/c.json", c.file);
      args.push_back("--config=" + dir + "/c.json");
    }
    auto l = LoadSettings(args, Env(c.env));
    ASSERT_FALSE(l.ok()) << c.fragment;
    EXPECT_TRUE(l.status().IsInvalidArgument());
    EXPECT_NE(std::string::npos, l.status().message().find(c.fragment))
        << "want '" << c.fragment << "' in: " << l.status().message();
  }
  auto missing = LoadSettings({"--config", dir + "/none.json"}, Env({}));
  EXPECT_FALSE(missing.ok());
  std::filesystem::remove_all(dir);
}

// --- the usagedb binary -----------------------------------------------------------------

// A `usagedb serve` child process with its stdout and stderr captured.
class ServeProcess {
 public:
  ServeProcess(const std::vector<std::string>& args,
               const std::vector<std::string>& env_extra = {}) {
    std::vector<std::string> argv_s = {USAGEDB_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; e++) {
      if (std::string(*e).rfind("USAGEDB_", 0) != 0) env_s.push_back(*e);
    }
    env_s.insert(env_s.end(), env_extra.begin(), env_extra.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    int out[2], err[2];
    EXPECT_EQ(0, ::pipe(out));
    EXPECT_EQ(0, ::pipe(err));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, err[0]);
    EXPECT_EQ(0, posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data()));
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
    ::close(out_);
    ::close(err_);
  }

  // Reads stdout until the "listening on" line; returns the port (0 when the process ended).
  uint16_t WaitListening() {
    std::string line;
    char c;
    while (::read(out_, &c, 1) == 1) {
      if (c != '\n') {
        line += c;
        continue;
      }
      size_t at = line.find("listening on http://127.0.0.1:");
      if (at != std::string::npos) {
        return static_cast<uint16_t>(std::atoi(line.c_str() + at + 30));
      }
      line.clear();
    }
    return 0;
  }
  // Waits for the exit; returns the exit code (128 + signal when killed by one).
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(err_, buf, sizeof(buf))) > 0) stderr_.append(buf, static_cast<size_t>(n));
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }
  // Reads stderr until `fragment` appears; false when the process ended first.
  bool WaitStderr(const std::string& fragment) {
    char buf[256];
    while (stderr_.find(fragment) == std::string::npos) {
      ssize_t n = ::read(err_, buf, sizeof(buf));
      if (n <= 0) return false;
      stderr_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  void Signal(int sig) { ::kill(pid_, sig); }
  const std::string& stderr_text() const { return stderr_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  bool exited_ = false;
  std::string stderr_;
};

TEST(ServeBinaryTest, BadConfigAndUnknownFlagsExit2NamingThem) {
  std::string dir = TempDir("serve_bad_config");
  WriteFile(dir + "/bad.json", "{\"durability\":\"fast\",\"max_body_bytes\":-1}");
  {
    ServeProcess p({"serve", "--db-root", dir + "/db", "--config", dir + "/bad.json"});
    EXPECT_EQ(2, p.Wait());
    EXPECT_NE(std::string::npos, p.stderr_text().find("max_body_bytes")) << p.stderr_text();
  }
  {
    ServeProcess p({"serve", "--db-root", dir + "/db", "--listen-port", "1"});
    EXPECT_EQ(2, p.Wait());
    EXPECT_NE(std::string::npos, p.stderr_text().find("--listen-port")) << p.stderr_text();
  }
  {
    ServeProcess p({"serve", "--db-root", dir + "/db"}, {"USAGEDB_DURABILITY=maybe"});
    EXPECT_EQ(2, p.Wait());
    EXPECT_NE(std::string::npos, p.stderr_text().find("USAGEDB_DURABILITY")) << p.stderr_text();
  }
  {
    ServeProcess p({"serve", "--db-root", dir + "/db", "--api-keys-file", dir + "/none.json"});
    EXPECT_EQ(2, p.Wait());
    EXPECT_NE(std::string::npos, p.stderr_text().find("api_keys_file")) << p.stderr_text();
  }
  std::filesystem::remove_all(dir);
}

TEST(ServeBinaryTest, FlagBeatsEnvironmentOnTheRunningServer) {
  std::string dir = TempDir("serve_precedence");
  WriteFile(dir + "/c.json", "{\"max_body_bytes\":100}");
  ServeProcess p({"--db-root", dir + "/db", "serve", "--listen", "127.0.0.1:0", "--config",
                  dir + "/c.json", "--max-body-bytes", "5000"},
                 {"USAGEDB_MAX_BODY_BYTES=200"});
  uint16_t port = p.WaitListening();
  ASSERT_NE(0, port);
  HttpClient c("127.0.0.1", port);
  std::string body = Batch(
      {Ev("pb1", "a", "1", kMay1, ",\"dimensions\":{\"pad\":\"" + std::string(100, 'x') + "\"}")});
  ASSERT_GT(body.size(), 200u);
  EXPECT_EQ(200, c.Request("POST", "/v1/usage/batch", body).status);
  EXPECT_EQ(413, c.Request("POST", "/v1/usage/batch", std::string(6000, ' ')).status);
  p.Signal(SIGTERM);
  EXPECT_EQ(0, p.Wait());
  std::filesystem::remove_all(dir);
}

// The body of a batch of n events (NDJSON), big enough to take a while to ingest.
std::string BigNdjson(int n, const std::string& prefix) {
  std::string body;
  for (int i = 0; i < n; i++) body += Ev(prefix + std::to_string(i), "big", "1") + "\n";
  return body;
}

// Waits until /metrics reports at least `n` requests in flight (this one included).
bool WaitInFlight(uint16_t port, int n) {
  HttpClient m("127.0.0.1", port);
  const std::string gauge = "\nusagedb_http_requests_in_flight ";
  for (int i = 0; i < 20000; i++) {
    ClientResponse r = m.Request("GET", "/metrics");
    size_t at = r.body.find(gauge);
    if (at != std::string::npos && std::atoi(r.body.c_str() + at + gauge.size()) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

TEST(ServeBinaryTest, SigtermLetsTheInFlightBatchFinishAndItsEventsSurviveARestart) {
  std::string dir = TempDir("serve_sigterm");
  const int kEvents = 50000;
  {
    ServeProcess p({"serve", "--db-root", dir + "/db", "--listen", "127.0.0.1:0",
                    "--shutdown-grace-ms", "9000"});
    uint16_t port = p.WaitListening();
    ASSERT_NE(0, port);
    ClientResponse r;
    std::thread t([&] {
      HttpClient c("127.0.0.1", port);
      r = c.Request("POST", "/v1/usage/batch", BigNdjson(kEvents, "st"),
                    {{"Content-Type", "application/x-ndjson"}});
    });
    bool observed = WaitInFlight(port, 2);
    p.Signal(SIGTERM);
    t.join();
    EXPECT_EQ(0, p.Wait()) << p.stderr_text();
    EXPECT_TRUE(observed);
    if (observed) {
      EXPECT_EQ(200, r.status) << r.body;
      EXPECT_EQ(kEvents, Json(r.body).Int("/accepted"));
    }
    ASSERT_EQ(200, r.status);
  }
  // Restart: every acknowledged event is there.
  ServeProcess p({"serve", "--db-root", dir + "/db", "--listen", "127.0.0.1:0"});
  uint16_t port = p.WaitListening();
  ASSERT_NE(0, port);
  HttpClient c("127.0.0.1", port);
  ClientResponse r = c.Request("GET", "/v1/accounts/big/usage");
  EXPECT_EQ(std::to_string(kEvents), Json(r.body).Str("/lines/0/quantity"));
  p.Signal(SIGINT);
  EXPECT_EQ(0, p.Wait());
  std::filesystem::remove_all(dir);
}

TEST(ServeBinaryTest, SecondSignalExitsAtOnce) {
  std::string dir = TempDir("serve_second_signal");
  ServeProcess p({"serve", "--db-root", dir + "/db", "--listen", "127.0.0.1:0",
                  "--shutdown-grace-ms", "9000"});
  uint16_t port = p.WaitListening();
  ASSERT_NE(0, port);
  std::thread t([&] {
    HttpClient c("127.0.0.1", port);
    c.Request("POST", "/v1/usage/batch", BigNdjson(50000, "ss"),
              {{"Content-Type", "application/x-ndjson"}});
  });
  bool observed = WaitInFlight(port, 2);
  p.Signal(SIGTERM);
  EXPECT_TRUE(observed);
  EXPECT_TRUE(p.WaitStderr("shutting down"));
  // The server now waits for the batch (and then flushes it): a SIGINT ends it at once.
  p.Signal(SIGINT);
  int code = p.Wait();
  t.join();
  EXPECT_EQ(130, code) << p.stderr_text();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace server
}  // namespace usagedb

// --- query engine routes (SPEC §3.2 group_by, §3.3, §3.4, §3.8 conflicts) ----------------

namespace usagedb::server {
namespace {

TEST_F(ServerTest, UsageGroupByAndQueryRoutesAnswerExactly) {
  StartServer();
  ASSERT_EQ(200, Post("/v1/usage/batch",
                      Batch({Ev("q1", "acc", "99999999999999999999999999999999999999"),
                             Ev("q2", "acc", "1"), Ev("q3", "other", "7")}))
                     .status);
  ClientResponse r = Get("/v1/accounts/acc/usage?group_by=meter_id,date");
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  EXPECT_EQ(1u, j.Size("/lines")) << r.body;
  EXPECT_EQ("100000000000000000000000000000000000000", j.Str("/lines/0/quantity")) << r.body;
  EXPECT_EQ(2, j.Int("/lines/0/count"));
  EXPECT_FALSE(j.Str("/lines/0/date").empty());
  r = Post("/v1/query/sql",
           R"({"query": "SELECT account_id, SUM(quantity) AS q, COUNT(*) FROM usage_events GROUP BY account_id ORDER BY q DESC"})");
  ASSERT_EQ(200, r.status) << r.body;
  Json s(r.body);
  EXPECT_EQ(2u, s.Size("/data"));
  EXPECT_EQ("acc", s.Str("/data/0/account_id"));
  EXPECT_EQ("100000000000000000000000000000000000000", s.Str("/data/0/q"));
  EXPECT_EQ(1, s.Int("/data/1/count"));
  r = Post("/v1/query/sql", R"({"query": "SELECT SUM(quantity) FROM usage_events WHERE meter_id = 'x' OR meter_id = 'y'"})");
  EXPECT_EQ(400, r.status);
  EXPECT_NE(std::string::npos, r.body.find("OR")) << r.body;
  r = Post("/v1/query/json", R"({"account_id": "other", "metrics": {"n": "count", "top": "max"}})");
  ASSERT_EQ(200, r.status) << r.body;
  Json q(r.body);
  EXPECT_EQ(1, q.Int("/data/0/n"));
  EXPECT_EQ("7", q.Str("/data/0/top"));
  EXPECT_EQ(400, Post("/v1/query/json", R"({"acount_id": "x"})").status);
  EXPECT_EQ(415, Post("/v1/query/json", "{}", "text/plain").status);
}

TEST_F(ServerTest, EventsListingPagesCoverEveryEventOnce) {
  StartServer();
  std::vector<std::string> evs;
  for (int i = 0; i < 25; i++) evs.push_back(Ev("l" + std::to_string(i), "acc", "1"));
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch(evs)).status);
  std::string cursor;
  int seen = 0, pages = 0;
  for (;;) {
    ClientResponse r = Get("/v1/accounts/acc/usage/events?limit=10" +
                           (cursor.empty() ? std::string() : "&cursor=" + cursor));
    ASSERT_EQ(200, r.status) << r.body;
    Json j(r.body);
    seen += static_cast<int>(j.Size("/events"));
    pages++;
    if (j.IsNull("/next_cursor")) break;
    cursor = j.Str("/next_cursor");
    // Events arriving meanwhile are not part of this listing.
    ASSERT_EQ(200, Post("/v1/usage/batch", Batch({Ev("late" + std::to_string(pages), "acc", "1")})).status);
  }
  EXPECT_EQ(25, seen);
  EXPECT_EQ(3, pages);
  EXPECT_EQ(400, Get("/v1/accounts/acc/usage/events?limit=0").status);
  EXPECT_EQ(400, Get("/v1/accounts/acc/usage/events?limit=1.5").status);
  EXPECT_EQ(400, Get("/v1/accounts/acc/usage/events?cursor=%21%21").status);
}

// Forwards to a real DB. Query, ListEvents and ListConflicts record whether the request
// carried a deadline and, while `late` is set, return only after it has passed, so the
// engine sees the deadline past when it starts reading: a deterministic stand-in for a
// query that runs too long (no timing is asserted).
class LateReadsDb : public DB {
 public:
  explicit LateReadsDb(DB* base) : base_(base) {}
  std::atomic<bool> late{false};
  std::atomic<int> reads_with_deadline{0};
  std::atomic<int> reads_without_deadline{0};

  Status Ingest(std::vector<Event> events, const IngestOptions& options,
                IngestResult* result) override {
    return base_->Ingest(std::move(events), options, result);
  }
  Status IngestJson(std::string_view body, bool ndjson, IngestResult* result) override {
    return base_->IngestJson(body, ndjson, result);
  }
  Status Aggregate(const ReadFilter& filter, bool group_by_account,
                   AggregateResult* result) override {
    return base_->Aggregate(filter, group_by_account, result);
  }
  Status Query(const QueryRequest& request, QueryResult* result) override {
    Wait(request.deadline);
    return base_->Query(request, result);
  }
  Status ListEvents(const ListRequest& request, ListResult* result) override {
    Wait(request.deadline);
    return base_->ListEvents(request, result);
  }
  Status ListConflicts(const ConflictListRequest& request, ConflictListResult* result) override {
    Wait(request.deadline);
    return base_->ListConflicts(request, result);
  }
  Status ScanEvents(const ReadFilter& filter,
                    const std::function<bool(const Event&)>& visit) override {
    return base_->ScanEvents(filter, visit);
  }
  Result<std::unique_ptr<SnapshotReader>> OpenSnapshot(std::optional<uint64_t> as_of_seq) override {
    return base_->OpenSnapshot(as_of_seq);
  }
  Status Flush() override { return base_->Flush(); }
  DbStats Stats() override { return base_->Stats(); }
  const RecoveryReport& recovery_report() const override { return base_->recovery_report(); }
  uint64_t LastSequence() override { return base_->LastSequence(); }
  Status Close() override { return Status::OK(); }  // the fixture closes the real one

 private:
  void Wait(const std::optional<std::chrono::steady_clock::time_point>& deadline) {
    (deadline ? reads_with_deadline : reads_without_deadline)++;
    if (!late || !deadline) return;
    while (std::chrono::steady_clock::now() <= *deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  DB* base_;
};

TEST_F(ServerTest, QueriesAndListingsPastRequestTimeoutAre503TimeoutFromTheEngine) {
  ServerSettings settings;
  settings.request_timeout_ms = 300;
  LateReadsDb* late_db = nullptr;
  StartServer(settings, ApiKeys(), [&](DB* base) {
    auto w = std::make_unique<LateReadsDb>(base);
    late_db = w.get();
    return w;
  });
  ASSERT_NE(nullptr, late_db);
  ASSERT_EQ(200,
            Post("/v1/usage/batch", Batch({Ev("t1", "acc", "5"), Ev("t2", "acc", "6")})).status);
  const std::string sql =
      R"({"query": "SELECT account_id, SUM(quantity) FROM usage_events GROUP BY account_id"})";
  const std::string json = R"({"account_id": "acc", "metrics": {"n": "count"}})";
  auto run_all = [&] {
    return std::vector<ClientResponse>{
        Get("/v1/accounts/acc/usage"), Get("/v1/accounts/acc/usage/events"),
        Post("/v1/query/sql", sql), Post("/v1/query/json", json), Get("/v1/conflicts")};
  };
  // In time: every route answers as usual, and each handed the engine its deadline.
  for (const ClientResponse& r : run_all()) EXPECT_EQ(200, r.status) << r.body;
  EXPECT_EQ(5, late_db->reads_with_deadline.load());
  EXPECT_EQ(0, late_db->reads_without_deadline.load());
  // Past the deadline: the engine's timeout becomes 503 timeout naming the setting, with
  // nothing partial in the body.
  late_db->late = true;
  for (const ClientResponse& r : run_all()) {
    EXPECT_EQ(503, r.status) << r.body;
    EXPECT_EQ("timeout", ErrorCode(r)) << r.body;
    EXPECT_EQ("1", r.Header("retry-after"));
    EXPECT_NE(std::string::npos, r.body.find("request_timeout_ms (300)")) << r.body;
    EXPECT_EQ(std::string::npos, r.body.find("\"data\"")) << r.body;
  }
  // Exports are not limited by request_timeout_ms.
  ClientResponse e = Get("/v1/export/parquet");
  EXPECT_EQ(200, e.status);
  late_db->late = false;
  EXPECT_EQ(200, Get("/v1/accounts/acc/usage").status);
}

TEST_F(ServerTest, ConflictsAreListed) {
  StartServer();
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch({Ev("c1", "acc", "1")})).status);
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch({Ev("c1", "acc", "2")})).status);
  ClientResponse r = Get("/v1/conflicts");
  ASSERT_EQ(200, r.status) << r.body;
  Json j(r.body);
  EXPECT_EQ(1u, j.Size("/conflicts"));
  EXPECT_EQ("conflict", j.Str("/conflicts/0/reason"));
  EXPECT_EQ("c1", j.Str("/conflicts/0/event/event_id"));
  EXPECT_EQ(0u, Json(Get("/v1/conflicts?reason=period_closed").body).Size("/conflicts"));
  EXPECT_EQ(400, Get("/v1/conflicts?reason=other").status);
}

}  // namespace
}  // namespace usagedb::server

// --- GET /v1/export/parquet ---------------------------------------------------------------

namespace usagedb {
namespace server {
namespace {

// The rows of an exported file read back with the export module's footer reader and page
// decoder: event_id → (account_id, quantity).
struct ExportedRows {
  int64_t rows = -1;
  std::map<std::string, std::pair<std::string, std::string>> by_id;
};

ExportedRows ReadExport(const std::string& bytes) {
  ExportedRows out;
  EXPECT_GE(bytes.size(), 12u);
  if (bytes.size() < 12) return out;
  EXPECT_EQ("PAR1", bytes.substr(0, 4));
  EXPECT_EQ("PAR1", bytes.substr(bytes.size() - 4));
  MemFileSystem fs;
  {
    auto f = fs.NewWritableFile("/export.parquet");
    EXPECT_TRUE(f.ok());
    if (!f.ok()) return out;
    EXPECT_TRUE((*f)->Append(bytes).ok());
    EXPECT_TRUE((*f)->Close().ok());
  }
  auto meta = parquet::ReadParquetFooter(&fs, "/export.parquet");
  EXPECT_TRUE(meta.ok()) << meta.status().ToString();
  if (!meta.ok()) return out;
  parquet::MiniReader reader(bytes);
  int64_t rows = 0;
  for (const auto& rg : meta->row_groups) {
    auto col = [&](int c) { return reader.ReadColumn(rg.columns[c], parquet::kColumns[c]); };
    parquet::Values ids = col(parquet::kColEventId);
    parquet::Values accounts = col(parquet::kColAccountId);
    parquet::Values qs = col(parquet::kColQuantity);
    EXPECT_EQ(static_cast<size_t>(rg.num_rows), ids.size());
    EXPECT_EQ(ids.size(), qs.size());
    EXPECT_EQ(ids.size(), accounts.size());
    for (size_t i = 0; i < ids.size() && i < qs.size() && i < accounts.size(); i++) {
      out.by_id[ids[i].value_or("<null>")] = {accounts[i].value_or("<null>"),
                                              qs[i].value_or("<null>")};
    }
    rows += rg.num_rows;
  }
  EXPECT_EQ(meta->num_rows, rows);
  out.rows = rows;
  return out;
}

// Names in `dir` starting with the export temporaries' prefix.
std::vector<std::string> ExportTemporaries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("http-export-", 0) == 0) out.push_back(name);
  }
  return out;
}

// A MemFileSystem whose files read fine at offset 0 and fail further on: the export file's
// second chunk cannot be read (an error after the first byte was sent).
class FailingReadFileSystem : public MemFileSystem {
 public:
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> f, MemFileSystem::NewRandomAccessFile(path));
    return std::unique_ptr<RandomAccessFile>(new Failing(std::move(f)));
  }

 private:
  class Failing : public RandomAccessFile {
   public:
    explicit Failing(std::unique_ptr<RandomAccessFile> f) : f_(std::move(f)) {}
    Status Read(uint64_t offset, size_t n, std::string* out) const override {
      if (offset > 0) return Status::IOError("injected read fault");
      return f_->Read(offset, n, out);
    }
    uint64_t Size() const override { return f_->Size(); }

   private:
    std::unique_ptr<RandomAccessFile> f_;
  };
};

TEST_F(ServerTest, ExportParquetStreamsAValidFileWithExactValues) {
  StartServer();
  api_->SetExportSeamsForTesting(FileSystem::Default(), 512);  // several chunks
  std::vector<std::string> events;
  for (int i = 0; i < 300; i++) {
    events.push_back(Ev("e" + std::to_string(i), i % 2 ? "acme" : "globex", std::to_string(i + 1),
                        kMay1 + i * 60000));
  }
  events.push_back(Ev("max", "acme", std::string("\"") + kMax38 + "\""));
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch(events)).status);
  ASSERT_EQ(200, Post("/v1/admin/flush", "").status);  // some in segments...
  ASSERT_EQ(200,
            Post("/v1/usage/batch", Batch({Ev("late", "initech", "7")})).status);  // ...one not

  ClientResponse r = Get("/v1/export/parquet");
  ASSERT_EQ(200, r.status) << r.body.substr(0, 300);
  EXPECT_EQ("application/vnd.apache.parquet", r.Header("content-type"));
  EXPECT_TRUE(r.chunked);
  EXPECT_TRUE(r.complete);
  EXPECT_GT(r.body.size(), 3 * 512u);
  EXPECT_EQ("302", r.Header("x-usagedb-events"));
  ExportedRows rows = ReadExport(r.body);
  EXPECT_EQ(302, rows.rows);
  EXPECT_EQ(std::make_pair(std::string("acme"), std::string(kMax38)), rows.by_id["max"]);
  EXPECT_EQ(std::make_pair(std::string("globex"), std::string("1")), rows.by_id["e0"]);
  EXPECT_EQ(std::make_pair(std::string("acme"), std::string("300")), rows.by_id["e299"]);
  EXPECT_EQ(std::make_pair(std::string("initech"), std::string("7")), rows.by_id["late"]);

  // The connection stays usable, the temporary is gone, a second export gives the same rows.
  EXPECT_EQ(1, client_->connects());
  ClientResponse h = Get("/health");
  EXPECT_EQ(200, h.status);
  EXPECT_EQ(1, client_->connects());
  EXPECT_TRUE(ExportTemporaries(dir_ + "/db").empty());
  ClientResponse again = Get("/v1/export/parquet");
  EXPECT_EQ(302, ReadExport(again.body).rows);
}

TEST_F(ServerTest, ExportParquetFiltersByRangeAndAccount) {
  StartServer();
  std::vector<std::string> events;
  for (int d = 0; d < 5; d++) {
    events.push_back(Ev("a" + std::to_string(d), "acme", "1", kMay1 + d * kDayMs));
    events.push_back(Ev("g" + std::to_string(d), "globex", "2", kMay1 + d * kDayMs));
  }
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch(events)).status);
  // Half-open [May 2, May 4): days 1 and 2.
  ClientResponse r = Get("/v1/export/parquet?from=2026-05-02&to=2026-05-04");
  ASSERT_EQ(200, r.status) << r.body;
  ExportedRows rows = ReadExport(r.body);
  EXPECT_EQ(4, rows.rows);
  EXPECT_EQ(1u, rows.by_id.count("a1"));
  EXPECT_EQ(1u, rows.by_id.count("g2"));
  EXPECT_EQ(0u, rows.by_id.count("a3"));
  r = Get("/v1/export/parquet?from=2026-05-02&to=2026-05-04&account_id=globex");
  ASSERT_EQ(200, r.status) << r.body;
  rows = ReadExport(r.body);
  EXPECT_EQ(2, rows.rows);
  EXPECT_EQ(std::make_pair(std::string("globex"), std::string("2")), rows.by_id["g1"]);
  // as_of: the sequence of a first batch excludes a later one.
  ClientResponse b = Post("/v1/usage/batch", Batch({Ev("later", "acme", "5")}));
  ASSERT_EQ(200, b.status);
  Json j(b.body);
  const int64_t seq = j.Int("/commit_sequence");
  ASSERT_GT(seq, 1);
  EXPECT_EQ(11, ReadExport(Get("/v1/export/parquet").body).rows);
  r = Get("/v1/export/parquet?as_of=" + std::to_string(seq - 1));
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_EQ(10, ReadExport(r.body).rows);
}

TEST_F(ServerTest, ExportParquetOfAnEmptyDatabaseIsAValidZeroRowFile) {
  StartServer();
  ClientResponse r = Get("/v1/export/parquet");
  ASSERT_EQ(200, r.status) << r.body;
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(0, ReadExport(r.body).rows);
  EXPECT_EQ("0", r.Header("x-usagedb-events"));
}

TEST_F(ServerTest, ExportParquetBadParametersAre400) {
  StartServer();
  ClientResponse r = Get("/v1/export/parquet?from=yesterday");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("bad_date", ErrorCode(r));
  r = Get("/v1/export/parquet?from=2026-05-03&to=2026-05-02");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("invalid_argument", ErrorCode(r));
  r = Get("/v1/export/parquet?as_of=1&as_of_ms=1");
  EXPECT_EQ(400, r.status) << r.body;
  r = Get("/v1/export/parquet?as_of=999999");
  EXPECT_EQ(400, r.status) << r.body;
  r = Get("/v1/export/parquet?partition_by=date");
  EXPECT_EQ(400, r.status);
  EXPECT_EQ("unknown_parameter", ErrorCode(r));
  EXPECT_TRUE(ExportTemporaries(dir_ + "/db").empty());
}

TEST_F(ServerTest, ExportParquetNeedsTheReadScope) {
  const std::string keys_file = dir_ + "/keys.json";
  WriteFile(keys_file, R"({"keys":[{"key":"ingest-key","scopes":["ingest"]},)"
                       R"({"key":"read-key","scopes":["read"]}]})");
  auto keys = ApiKeys::Load(keys_file);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  StartServer(ServerSettings(), std::move(keys).value());
  EXPECT_EQ(401, Get("/v1/export/parquet").status);
  EXPECT_EQ(403, Get("/v1/export/parquet", {{"Authorization", "Bearer ingest-key"}}).status);
  EXPECT_EQ(200, Get("/v1/export/parquet", {{"Authorization", "Bearer read-key"}}).status);
}

TEST_F(ServerTest, ExportParquetWithADeletedSegmentIsJson500NamingIt) {
  StartServer();
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch({Ev("x", "acme", "1")})).status);
  ASSERT_EQ(200, Post("/v1/admin/flush", "").status);
  std::vector<std::string> paths;
  {
    auto snap = db_->OpenSnapshot(std::nullopt);
    ASSERT_TRUE(snap.ok());
    for (const auto& seg : (*snap)->segments()) paths.push_back(seg.path);
  }
  ASSERT_FALSE(paths.empty());
  StopServer();  // drop cached segment readers
  ASSERT_TRUE(std::filesystem::remove(paths.back()));
  StartServer();
  ClientResponse r = Get("/v1/export/parquet");
  EXPECT_EQ(500, r.status);
  EXPECT_FALSE(r.chunked);
  EXPECT_EQ("corruption", ErrorCode(r));
  EXPECT_NE(std::string::npos, r.body.find(std::filesystem::path(paths.back()).filename().string()))
      << r.body;
  EXPECT_TRUE(ExportTemporaries(dir_ + "/db").empty());
  EXPECT_TRUE(Healthy());
}

TEST_F(ServerTest, ExportParquetReadErrorAfterTheFirstByteCutsTheConnectionWithoutLastChunk) {
  StartServer();
  FailingReadFileSystem fs;
  // The MemFileSystem needs db_root's parents: create each component.
  std::string path;
  for (const auto& part : std::filesystem::path(dir_ + "/db")) {
    if (part == "/") continue;
    path += "/" + part.string();
    fs.CreateDir(path).IgnoreError();
  }
  api_->SetExportSeamsForTesting(&fs, 256);
  std::vector<std::string> events;
  for (int i = 0; i < 50; i++) events.push_back(Ev("e" + std::to_string(i), "acme", "1"));
  ASSERT_EQ(200, Post("/v1/usage/batch", Batch(events)).status);
  ClientResponse r = Get("/v1/export/parquet");
  EXPECT_EQ(200, r.status);
  EXPECT_TRUE(r.chunked);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(256u, r.body.size());
  EXPECT_FALSE(client_->connected());
  auto left = fs.ListDir(dir_ + "/db");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << (*left)[0];
  EXPECT_TRUE(Healthy());
}

TEST_F(ServerTest, StaleExportTemporariesAreRemovedAtStartup) {
  StartServer();
  StopServer();
  WriteFile(dir_ + "/db/http-export-1-0.parquet.tmp", "PAR1");
  WriteFile(dir_ + "/db/http-export-1-1.parquet.tmp.tmp-1-0", "PAR1");
  StartServer();
  EXPECT_TRUE(ExportTemporaries(dir_ + "/db").empty());
}

}  // namespace
}  // namespace server
}  // namespace usagedb
