// The only translation unit that includes Boost.Beast (TOOLCHAIN.md: ~9 s and 0.5 GB to
// compile each). Every Beast/Asio call uses the error_code overloads or is wrapped: nothing
// throws out of this file.
#include "server/http_server.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/event_codec.h"  // kJsonPadding
#include "server/http_errors.h"
#include "server/metrics.h"

namespace usagedb {
namespace server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Room in a connection's read buffer while a body is read (see Session::ReadBody).
constexpr size_t kBodyReadBytes = 64 * 1024;

class ServerImpl;

// One connection. All its work runs on its own strand, so its members need no locks; the
// handler runs inline on that strand (a worker thread of the pool).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, ServerImpl* server);
  ~Session();

  void Start();
  // Posted to the strand by ServerImpl::Shutdown.
  void OnShutdown();
  int fd() const { return fd_; }
  auto executor() { return stream_.get_executor(); }

 private:
  enum class State { kReading, kHandling, kWriting, kClosing };

  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void ReadBody();
  void OnBody(beast::error_code ec);
  void WriteResponse(HttpResponse response, bool keep_alive, unsigned version);
  // Streamed responses (HttpResponse::stream): the head, then one chunk per BodyStream::Next
  // until done (then the last chunk) or an error (then the connection is cut).
  void WriteStreamHead(HttpResponse response, bool close, unsigned version);
  void PumpStream(bool close);
  void OnWrite(beast::error_code ec, bool close);
  // A request that could not be read: answer (when there is something to say) and close.
  void OnReadError(beast::error_code ec);
  void WriteErrorAndClose(int status, const char* code, const std::string& message);
  // Half-closes and discards what the client still sends for a moment, so that it sees the
  // error response instead of a reset.
  void DrainAndClose();
  void DrainSome();
  void Close();

  beast::tcp_stream stream_;
  ServerImpl* server_;
  int fd_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<void> pending_;  // the message being written
  std::vector<char> drain_;
  std::shared_ptr<BodyStream> body_stream_;  // the streamed response being written
  bool chunked_ = false;                     // its framing (false: HTTP/1.0, raw until close)
  uint64_t streamed_bytes_ = 0;              // its body bytes written so far
  std::string chunk_;                        // the chunk being written
  std::string chunk_head_;                   // its framing: "<hex size>\r\n"
  State state_ = State::kReading;
  bool shutdown_requested_ = false;
};

class ServerImpl : public HttpServer {
 public:
  ServerImpl(const HttpServerOptions& options, RequestHandler* handler, ServerMetrics* metrics)
      : options_(options),
        handler_(handler),
        metrics_(metrics),
        work_(net::make_work_guard(ioc_)),
        acceptor_(net::make_strand(ioc_)),
        accept_retry_(acceptor_.get_executor()) {}

  ~ServerImpl() override {
    Shutdown(std::chrono::steady_clock::now());
    ioc_.stop();
    {
      std::lock_guard<std::mutex> l(mu_);
      handlers_stop_ = true;
      handler_cv_.notify_all();
    }
    JoinAll();
  }

  void JoinAll() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    for (std::thread& t : handler_threads_) {
      if (t.joinable()) t.join();
    }
    std::lock_guard<std::mutex> l(mu_);
    handler_queue_.clear();
  }

  void HandlerLoop() {
    std::unique_lock<std::mutex> l(mu_);
    handler_threads_running_++;
    while (true) {
      handler_cv_.wait(l, [this] { return handlers_stop_ || !handler_queue_.empty(); });
      if (handlers_stop_) break;
      std::function<void()> fn = std::move(handler_queue_.front());
      handler_queue_.pop_front();
      l.unlock();
      fn();
      fn = nullptr;  // release the session before taking the lock again
      l.lock();
    }
    handler_threads_running_--;
    cv_.notify_all();
  }

  Status Listen() {
    beast::error_code ec;
    net::ip::address address = net::ip::make_address(options_.host, ec);
    if (ec) return Status::InvalidArgument("listen: '" + options_.host + "' is not an address");
    tcp::endpoint ep(address, options_.port);
    const std::string where = options_.host + ":" + std::to_string(options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Status::IOError("cannot listen on " + where + ": " + ec.message());
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return Status::IOError("cannot read the bound port: " + ec.message());
    return Status::OK();
  }

  void Run() {
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    int n = options_.threads > 0 ? options_.threads : std::max(2, cores);
    int h = options_.handler_threads > 0 ? options_.handler_threads : std::max(8, 4 * cores);
    for (int i = 0; i < h; i++) {
      handler_threads_.emplace_back([this] { HandlerLoop(); });
    }
    DoAccept();
    running_threads_ = n;
    for (int i = 0; i < n; i++) {
      threads_.emplace_back([this] {
        while (true) {
          try {
            ioc_.run();
            break;
          } catch (const std::exception& e) {
            std::fprintf(stderr, "usagedb: http worker: unexpected exception: %s\n", e.what());
          }
        }
        std::lock_guard<std::mutex> l(mu_);
        running_threads_--;
        cv_.notify_all();
      });
    }
  }

  uint16_t port() const override { return port_; }

  bool Shutdown(TimePoint deadline) override {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (shut_down_) return true;
      shut_down_ = true;
      stopping_ = true;
      for (auto& [ptr, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
      pending_acks_ = static_cast<int>(live.size());
    }
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      accept_retry_.cancel();
    });
    for (auto& s : live) {
      net::post(s->executor(), [s] { s->OnShutdown(); });
    }
    live.clear();
    bool finished;
    {
      std::unique_lock<std::mutex> l(mu_);
      finished =
          cv_.wait_until(l, deadline, [this] { return pending_acks_ == 0 && in_flight_ == 0; });
      if (!finished) {
        // Abort: shutting a socket down is safe from any thread; a session unregisters (under
        // mu_) before its socket is closed, so every fd here is still that session's.
        for (auto& [ptr, weak] : sessions_) ::shutdown(ptr->fd(), SHUT_RDWR);
      }
    }
    work_.reset();
    ioc_.stop();
    return finished;
  }

  bool Join(TimePoint deadline) override {
    {
      std::unique_lock<std::mutex> l(mu_);
      handlers_stop_ = true;
      handler_cv_.notify_all();
      if (!cv_.wait_until(l, deadline, [this] {
            return running_threads_ == 0 && handler_threads_running_ == 0;
          })) {
        return false;
      }
    }
    JoinAll();
    return true;
  }

  // Queues `fn` for the handler pool. Jobs still queued when the pool stops are dropped
  // (their connections are being shut down anyway).
  void RunHandler(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    handler_queue_.push_back(std::move(fn));
    handler_cv_.notify_one();
  }

  // --- used by sessions ---
  const HttpServerOptions& options() const { return options_; }
  RequestHandler* handler() { return handler_; }
  bool stopping() {
    std::lock_guard<std::mutex> l(mu_);
    return stopping_;
  }
  // Registers a new session; false when shutting down (the session must not start).
  bool Register(const std::shared_ptr<Session>& s) {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return false;
    sessions_.emplace(s.get(), s);
    if (metrics_) metrics_->SetConnections(+1);
    return true;
  }
  void Unregister(Session* s) {
    std::lock_guard<std::mutex> l(mu_);
    if (sessions_.erase(s) && metrics_) metrics_->SetConnections(-1);
  }
  // A complete request starts being handled (it is in flight until EndRequest).
  void BeginRequest() {
    std::lock_guard<std::mutex> l(mu_);
    in_flight_++;
    if (metrics_) metrics_->AddInFlight(+1);
  }
  void EndRequest() {
    std::lock_guard<std::mutex> l(mu_);
    in_flight_--;
    if (metrics_) metrics_->AddInFlight(-1);
    cv_.notify_all();
  }
  void AckShutdown() {
    std::lock_guard<std::mutex> l(mu_);
    pending_acks_--;
    cv_.notify_all();
  }

 private:
  void DoAccept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           [this](beast::error_code ec, tcp::socket socket) {
                             if (ec == net::error::operation_aborted || !acceptor_.is_open())
                               return;
                             if (ec) {
                               // EMFILE and the like: wait a little instead of spinning.
                               accept_retry_.expires_after(std::chrono::milliseconds(50));
                               accept_retry_.async_wait([this](beast::error_code wec) {
                                 if (!wec && acceptor_.is_open()) DoAccept();
                               });
                               return;
                             }
                             beast::error_code opt_ec;
                             socket.set_option(tcp::no_delay(true), opt_ec);
                             auto session = std::make_shared<Session>(std::move(socket), this);
                             if (Register(session)) session->Start();
                             DoAccept();
                           });
  }

  HttpServerOptions options_;
  RequestHandler* handler_;
  ServerMetrics* metrics_;

  // Declared before ioc_: sessions destroyed with the io_context's pending handlers still
  // unregister themselves.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;    // guarded by mu_
  bool shut_down_ = false;   // guarded by mu_
  int in_flight_ = 0;        // guarded by mu_: requests received and not yet answered
  int pending_acks_ = 0;     // guarded by mu_: sessions yet to see the shutdown
  int running_threads_ = 0;  // guarded by mu_
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // guarded by mu_
  // The handler pool: requests received in full wait here for a handler thread.
  std::condition_variable handler_cv_;
  std::deque<std::function<void()>> handler_queue_;  // guarded by mu_
  bool handlers_stop_ = false;                       // guarded by mu_
  int handler_threads_running_ = 0;                  // guarded by mu_
  std::vector<std::thread> handler_threads_;

  net::io_context ioc_;
  // Keeps the workers running while nothing is pending (e.g. between the acceptor's close
  // and the sessions' shutdown notices) until Shutdown stops the loop.
  net::executor_work_guard<net::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
};

Session::Session(tcp::socket&& socket, ServerImpl* server)
    : stream_(std::move(socket)), server_(server) {
  fd_ = stream_.socket().native_handle();
}

Session::~Session() { server_->Unregister(this); }

void Session::Start() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
}

void Session::OnShutdown() {
  shutdown_requested_ = true;
  if (state_ == State::kReading) Close();  // idle, or a request not fully received: dropped
  // kHandling/kWriting: the response is written, then the connection closes (OnWrite).
  server_->AckShutdown();
}

void Session::ReadHeader() {
  if (shutdown_requested_) return Close();
  state_ = State::kReading;
  parser_.emplace();
  parser_->header_limit(server_->options().max_header_bytes);
  parser_->body_limit(server_->options().max_body_bytes);
  stream_.expires_after(std::chrono::milliseconds(server_->options().request_timeout_ms));
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void Session::OnHeader(beast::error_code ec) {
  if (ec) return OnReadError(ec);
  if (shutdown_requested_) return Close();
  const auto& req = parser_->get();
  if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    pending_ = cont;
    http::async_write(stream_, *cont, [self = shared_from_this()](beast::error_code wec, size_t) {
      if (wec) return self->Close();
      self->ReadBody();
    });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  // Beast reads max(512, free capacity) bytes per read_some, and the parser consumes body bytes
  // out of buffer_ as they arrive, so a buffer sized by the request head stays ~1 KiB: a 250 KB
  // batch took ~670 recvmsg calls, each with its own epoll wakeup and timer re-arm. With 64 KiB
  // of room a read takes what the socket holds.
  if (!parser_->is_done() && buffer_.capacity() < kBodyReadBytes) buffer_.reserve(kBodyReadBytes);
  // The body string gets its final capacity up front: its size plus the padding a JSON route
  // appends for simdjson (ApiService::DecodeBody), so that append does not copy the whole body
  // again. (Content-Length was checked against body_limit with the head.)
  if (auto length = parser_->content_length(); length && *length > 0) {
    parser_->get().body().reserve(static_cast<size_t>(*length) + kJsonPadding);
  }
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
}

void Session::OnBody(beast::error_code ec) {
  if (ec) return OnReadError(ec);
  if (shutdown_requested_) return Close();  // shutdown came first: not received in time
  stream_.expires_never();
  state_ = State::kHandling;
  server_->BeginRequest();

  http::request<http::string_body> req = parser_->release();
  parser_.reset();
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.target = std::string(req.target());
  size_t q = request.target.find('?');
  request.path = request.target.substr(0, q);
  if (q != std::string::npos) request.query = request.target.substr(q + 1);
  request.content_type = std::string(req[http::field::content_type]);
  request.content_encoding = std::string(req[http::field::content_encoding]);
  request.authorization = std::string(req[http::field::authorization]);
  request.body = std::move(req.body());
  const bool keep_alive = req.keep_alive();
  const unsigned version = req.version();

  // The handler runs on the handler pool (it may block in the WAL's group-commit fsync; many
  // concurrent committers are what lets one fsync cover several batches); the response is
  // written back on this connection's strand.
  server_->RunHandler(
      [self = shared_from_this(), request = std::move(request), keep_alive, version]() mutable {
        auto response = std::make_shared<HttpResponse>();
        try {
          self->server_->handler()->Handle(request, response.get());
        } catch (const std::exception& e) {
          SetHttpError(500, "internal", std::string("unexpected exception: ") + e.what(),
                       response.get());
        }
        net::post(self->executor(), [self, response, keep_alive, version] {
          self->WriteResponse(std::move(*response), keep_alive, version);
        });
      });
}

void Session::WriteResponse(HttpResponse response, bool keep_alive, unsigned version) {
  if (response.stream) {
    return WriteStreamHead(std::move(response),
                           !keep_alive || shutdown_requested_ || server_->stopping(), version);
  }
  auto res = std::make_shared<http::response<http::string_body>>();
  res->version(version);
  res->result(static_cast<unsigned>(response.status));
  res->set(http::field::server, "usagedb");
  res->set(http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) res->set(name, value);
  res->body() = std::move(response.body);
  const bool close = !keep_alive || shutdown_requested_ || server_->stopping();
  res->keep_alive(!close);
  res->prepare_payload();
  pending_ = res;
  state_ = State::kWriting;
  stream_.expires_after(std::chrono::milliseconds(server_->options().request_timeout_ms));
  http::async_write(stream_, *res,
                    [self = shared_from_this(), close](beast::error_code wec, size_t) {
                      self->OnWrite(wec, close);
                    });
}

void Session::WriteStreamHead(HttpResponse response, bool close, unsigned version) {
  // The response and its serializer live together (the serializer refers to the response).
  struct Head {
    http::response<http::empty_body> res;
    std::optional<http::response_serializer<http::empty_body>> sr;
  };
  auto head = std::make_shared<Head>();
  http::response<http::empty_body>& res = head->res;
  chunked_ = version >= 11;
  if (!chunked_) close = true;  // HTTP/1.0: the end of the body is the end of the connection
  res.version(version);
  res.result(static_cast<unsigned>(response.status));
  res.set(http::field::server, "usagedb");
  res.set(http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) res.set(name, value);
  res.keep_alive(!close);
  if (chunked_) res.chunked(true);
  head->sr.emplace(res);
  body_stream_ = std::move(response.stream);
  streamed_bytes_ = 0;
  pending_ = head;
  state_ = State::kWriting;
  stream_.expires_after(std::chrono::milliseconds(server_->options().request_timeout_ms));
  http::async_write_header(stream_, *head->sr,
                           [self = shared_from_this(), close](beast::error_code ec, size_t) {
                             self->pending_.reset();
                             if (ec) {
                               self->body_stream_.reset();
                               return self->OnWrite(ec, true);
                             }
                             self->PumpStream(close);
                           });
}

void Session::PumpStream(bool close) {
  chunk_.clear();
  bool done = false;
  Status s;
  try {
    s = body_stream_->Next(&chunk_, &done);
  } catch (const std::exception& e) {
    s = Status::IOError(std::string("unexpected exception: ") + e.what());
  }
  if (s.ok() && !done && chunk_.empty()) s = Status::IOError("the body stream gave an empty chunk");
  if (!s.ok()) {
    // Cut the connection without the last chunk: the client cannot mistake what it got for
    // a complete body.
    std::fprintf(stderr,
                 "usagedb: streamed response aborted after %llu body bytes (connection cut, no "
                 "final chunk): %s\n",
                 static_cast<unsigned long long>(streamed_bytes_), s.ToString().c_str());
    body_stream_.reset();
    chunk_.clear();
    return OnWrite(beast::error_code(net::error::operation_aborted), true);
  }
  auto self = shared_from_this();
  stream_.expires_after(std::chrono::milliseconds(server_->options().request_timeout_ms));
  if (done) {
    body_stream_.reset();  // releases the producer (and its temporary file) now
    if (!chunked_) return OnWrite(beast::error_code(), true);
    chunk_head_ = "0\r\n\r\n";
    net::async_write(stream_, net::buffer(chunk_head_),
                     [self, close](beast::error_code ec, size_t) { self->OnWrite(ec, close); });
    return;
  }
  chunk_head_.clear();
  if (chunked_) {
    char hex[32];
    std::snprintf(hex, sizeof(hex), "%zx\r\n", chunk_.size());
    chunk_head_ = hex;
  }
  streamed_bytes_ += chunk_.size();
  static const char kCrlf[] = "\r\n";
  std::array<net::const_buffer, 3> buffers{net::buffer(chunk_head_), net::buffer(chunk_),
                                           net::buffer(kCrlf, chunked_ ? 2 : 0)};
  net::async_write(stream_, buffers, [self, close](beast::error_code ec, size_t) {
    if (ec) {
      self->body_stream_.reset();
      return self->OnWrite(ec, true);
    }
    self->PumpStream(close);
  });
}

void Session::OnWrite(beast::error_code ec, bool close) {
  pending_.reset();
  server_->EndRequest();
  state_ = State::kReading;
  if (ec || close || shutdown_requested_) return Close();
  ReadHeader();
}

void Session::OnReadError(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == net::error::operation_aborted || ec == beast::error::timeout || ec == net::error::eof ||
      ec == net::error::connection_reset || shutdown_requested_) {
    return Close();
  }
  if (ec == http::error::body_limit) {
    return WriteErrorAndClose(413, "body_too_large",
                              "the body exceeds max_body_bytes (" +
                                  std::to_string(server_->options().max_body_bytes) + ")");
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return WriteErrorAndClose(431, "headers_too_large",
                              "the request head exceeds " +
                                  std::to_string(server_->options().max_header_bytes) + " bytes");
  }
  if (ec.category() == beast::error_code(http::error::bad_target).category()) {
    return WriteErrorAndClose(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
  Close();
}

void Session::WriteErrorAndClose(int status, const char* code, const std::string& message) {
  HttpResponse response;
  SetHttpError(status, code, message, &response);
  auto res = std::make_shared<http::response<http::string_body>>();
  res->version(11);
  res->result(static_cast<unsigned>(status));
  res->set(http::field::server, "usagedb");
  res->set(http::field::content_type, response.content_type);
  res->body() = std::move(response.body);
  res->keep_alive(false);
  res->prepare_payload();
  pending_ = res;
  state_ = State::kClosing;
  stream_.expires_after(std::chrono::seconds(5));
  http::async_write(stream_, *res, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->pending_.reset();
    if (ec) return self->Close();
    self->DrainAndClose();
  });
}

void Session::DrainAndClose() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return Close();
  drain_.resize(64 << 10);
  stream_.expires_after(std::chrono::seconds(2));
  DrainSome();
}

void Session::DrainSome() {
  stream_.async_read_some(net::buffer(drain_),
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) return self->Close();
                            self->DrainSome();
                          });
}

void Session::Close() {
  state_ = State::kClosing;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.cancel();
  // The socket itself closes when the last handler lets go of the session (~Session
  // unregisters first, so an abort never shuts down a reused descriptor).
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      RequestHandler* handler,
                                                      ServerMetrics* metrics) {
  try {
    auto impl = std::make_unique<ServerImpl>(options, handler, metrics);
    RETURN_IF_ERROR(impl->Listen());
    impl->Run();
    return std::unique_ptr<HttpServer>(std::move(impl));
  } catch (const std::exception& e) {
    return Status::IOError(std::string("cannot start the HTTP server: ") + e.what());
  }
}

}  // namespace server
}  // namespace usagedb
