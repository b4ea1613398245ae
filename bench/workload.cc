// Deterministic AI-usage workload; see workload.h and docs/parts/bench.md.
#include "bench/workload.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace usagedb::bench {
namespace {

// RFC 4648 base32 alphabet, lowercase.
constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
constexpr int kEventIdChars = 26;
constexpr size_t kRecentCapacity = 4096;             // records a retry or correction may refer to
constexpr size_t kRetryWindow = 1000;                // retries re-emit one of the last this many
constexpr int64_t kJitterMs = 5000;                  // +-5 s around the stream's clock
constexpr int64_t kMaxLatenessMs = 6 * 3600 * 1000;  // late records lag by up to 6 h
constexpr int kModelFamilies = 10;
constexpr int kModelVersions = 10;  // 10 families x 10 versions = 100 models

uint64_t SplitMix64(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

struct Family {
  const char* name;
  const char* provider;
};
// Families 0-7 are chat models, 8 embeddings, 9 image generation.
constexpr Family kFamilies[kModelFamilies] = {
    {"claude-sonnet", "anthropic"}, {"gpt", "openai"},         {"claude-haiku", "anthropic"},
    {"gemini-flash", "google"},     {"o-reasoning", "openai"}, {"gemini-pro", "google"},
    {"mistral-large", "mistral"},   {"llama", "meta"},         {"embed", "cohere"},
    {"gpt-image", "openai"},
};
constexpr int kEmbeddingFamily = 8;
constexpr int kImageFamily = 9;
constexpr int kChatFamilies = 8;

constexpr const char* kRegions[] = {"us-east-1",    "us-west-2",      "eu-west-1",
                                    "eu-central-1", "ap-southeast-1", "ap-northeast-1"};
constexpr const char* kAgents[] = {"support-agent", "code-agent",       "research-agent",
                                   "sales-agent",   "data-agent",       "triage-agent",
                                   "writer-agent",  "review-agent",     "ops-agent",
                                   "billing-agent", "onboarding-agent", "qa-agent"};
constexpr const char* kTools[] = {"web_search", "code_exec",    "file_read",  "file_write",
                                  "sql_query",  "http_fetch",   "calculator", "email_send",
                                  "calendar",   "vector_search"};
constexpr const char* kReasons[] = {"duplicate charge", "rate adjustment", "customer credit",
                                    "metering bug fix"};

enum MeterIndex {
  kTokensInput,
  kTokensOutput,
  kTokensCachedInput,
  kTokensReasoning,
  kTokensEmbedding,
  kRequestsLlm,
  kRequestsEmbedding,
  kRequestsImage,
  kToolCalls,
  kAgentRuntimeMs,
};
// Relative frequencies of the meters, in MeterIndex order (sum 100).
constexpr double kMeterWeights[] = {25, 25, 8, 5, 6, 12, 4, 3, 8, 4};

std::vector<double> ZipfCdf(size_t n, double s) {
  std::vector<double> cdf(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
    cdf[i] = sum;
  }
  for (double& c : cdf) c /= sum;
  return cdf;
}

std::string Padded(const char* prefix, uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
  std::string out(prefix);
  size_t len = static_cast<size_t>(end - digits);
  if (len < 6) out.append(6 - len, '0');
  out.append(digits, len);
  return out;
}

void AppendInt128(__int128 v, std::string* out) {
  char buf[48];
  char* p = buf + sizeof(buf);
  unsigned __int128 u =
      v < 0 ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  do {
    *--p = static_cast<char>('0' + static_cast<int>(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  out->append(p, static_cast<size_t>(buf + sizeof(buf) - p));
}

void AppendInt64(int64_t v, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(end - buf));
}

void AppendKey(const char* key, std::string* out) {
  out->push_back('"');
  out->append(key);
  out->append("\":");
}

const char* KindName(EventKind kind) {
  switch (kind) {
    case EventKind::kUsage:
      return "Usage";
    case EventKind::kCorrection:
      return "Correction";
    case EventKind::kRetraction:
      return "Retraction";
  }
  return "Usage";
}

}  // namespace

const std::vector<MeterSpec>& Meters() {
  static const std::vector<MeterSpec> kMeters = {
      {"tokens.input", "token", "ai_gateway"},
      {"tokens.output", "token", "ai_gateway"},
      {"tokens.cached_input", "token", "ai_gateway"},
      {"tokens.reasoning", "token", "ai_gateway"},
      {"tokens.embedding", "token", "embeddings"},
      {"requests.llm", "request", "ai_gateway"},
      {"requests.embedding", "request", "embeddings"},
      {"requests.image", "request", "images"},
      {"tool.calls", "call", "agents"},
      {"agent.runtime_ms", "ms", "agents"},
  };
  return kMeters;
}

WorkloadGenerator::WorkloadGenerator(const WorkloadOptions& options) : options_(options) {
  uint64_t x = options.seed;
  for (uint64_t& w : s_) w = SplitMix64(&x);
  const uint32_t accounts = std::max<uint32_t>(options.accounts, 1);
  account_cdf_ = ZipfCdf(accounts, options.account_zipf_s);
  model_cdf_ = ZipfCdf(kModelVersions, 1.0);
  double sum = 0;
  for (double w : kMeterWeights) meter_cdf_.push_back(sum += w);
  for (double& c : meter_cdf_) c /= sum;
  account_ids_.reserve(accounts);
  subscription_ids_.reserve(accounts);
  for (uint32_t i = 0; i < accounts; ++i) {
    account_ids_.push_back(Padded("acct_", i));
    // Four in five accounts bill through a subscription.
    subscription_ids_.push_back(Below(5) == 0 ? std::string() : Padded("sub_", i));
  }
  recent_.reserve(std::min<uint64_t>(kRecentCapacity, options.events));
}

uint64_t WorkloadGenerator::NextU64() {  // xoshiro256**
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double WorkloadGenerator::NextDouble() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

uint64_t WorkloadGenerator::Below(uint64_t n) {
  // Lemire's multiply-shift; the tiny bias is irrelevant for a workload.
  return static_cast<uint64_t>((static_cast<unsigned __int128>(NextU64()) * n) >> 64);
}

size_t WorkloadGenerator::SampleZipf(const std::vector<double>& cdf) {
  double u = NextDouble();
  size_t i = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  return std::min(i, cdf.size() - 1);
}

std::string WorkloadGenerator::NewEventId() {
  std::string id = "evt_";
  id.resize(4 + kEventIdChars);
  char* p = id.data() + 4;
  uint64_t bits = 0;
  int avail = 0;
  for (int i = 0; i < kEventIdChars; ++i) {
    if (avail < 5) {
      bits = NextU64();
      avail = 60;  // use 12 characters of each draw
    }
    p[i] = kBase32[bits & 31];
    bits >>= 5;
    avail -= 5;
  }
  return id;
}

void WorkloadGenerator::MakeUsage(Event* e) {
  e->event_id = NewEventId();
  e->kind = EventKind::kUsage;
  e->has_correction_ref = false;
  e->correction_original_event_id.clear();
  e->correction_reason.clear();

  const size_t account = SampleZipf(account_cdf_);
  e->account_id = account_ids_[account];
  if (subscription_ids_[account].empty()) {
    e->subscription_id.reset();
  } else {
    e->subscription_id = subscription_ids_[account];
  }

  const int meter = static_cast<int>(SampleZipf(meter_cdf_));
  const MeterSpec& spec = Meters()[static_cast<size_t>(meter)];
  e->meter_id = spec.meter_id;
  e->unit = spec.unit;

  // The model: a version by Zipf popularity, a family by what the meter measures.
  const int version = static_cast<int>(SampleZipf(model_cdf_));
  int family = static_cast<int>(Below(kChatFamilies));
  if (meter == kTokensEmbedding || meter == kRequestsEmbedding) family = kEmbeddingFamily;
  if (meter == kRequestsImage) family = kImageFamily;
  if (meter == kToolCalls) {
    e->model_id.reset();  // a tool call is not billed per model
  } else {
    std::string model = kFamilies[family].name;
    model += "-v";
    model += std::to_string(version + 1);
    e->model_id = std::move(model);
  }

  // Dimensions: provider and region always; agent for agent work; tool for tool calls.
  bool agent = false;
  bool tool = false;
  const bool chat = meter <= kTokensReasoning || meter == kRequestsLlm;
  if (meter == kToolCalls) {
    agent = tool = true;
  } else if (meter == kAgentRuntimeMs) {
    agent = true;
  } else if (chat && Below(4) == 0) {
    agent = true;
    tool = Below(10) < 3;
  }
  e->product_id = agent ? "agents" : spec.product_id;
  e->dimensions.clear();  // sorted by key: agent < provider < region < tool
  if (agent) e->dimensions.emplace_back("agent", kAgents[Below(std::size(kAgents))]);
  e->dimensions.emplace_back("provider", kFamilies[family].provider);
  e->dimensions.emplace_back("region", kRegions[SampleZipf(model_cdf_) % std::size(kRegions)]);
  if (tool) e->dimensions.emplace_back("tool", kTools[Below(std::size(kTools))]);

  auto log_uniform = [this](double lo, double hi) {
    double v = std::floor(lo * std::exp(NextDouble() * std::log(hi / lo)));
    return static_cast<__int128>(std::clamp(v, lo, hi));
  };
  switch (meter) {
    case kTokensInput:
    case kTokensCachedInput:
      e->quantity = log_uniform(1, 100000);
      break;
    case kTokensOutput:
      e->quantity = log_uniform(1, 16000);
      break;
    case kTokensReasoning:
      e->quantity = log_uniform(1, 32000);
      break;
    case kTokensEmbedding:
      e->quantity = log_uniform(1, 8192);
      break;
    case kToolCalls:
      e->quantity = Below(10) == 0 ? static_cast<__int128>(2 + Below(4)) : 1;
      break;
    case kAgentRuntimeMs:
      e->quantity = log_uniform(50, 600000);
      break;
    default:  // requests
      e->quantity = 1;
      break;
  }

  // The stream's clock advances evenly over the month; records jitter around it and a few
  // arrive hours late.
  const int64_t span = options_.end_ms - options_.start_ms;
  int64_t ts = options_.start_ms +
               static_cast<int64_t>(static_cast<__int128>(produced_) * span /
                                    static_cast<__int128>(std::max<uint64_t>(options_.events, 1)));
  ts += static_cast<int64_t>(Below(2 * kJitterMs + 1)) - kJitterMs;
  if (NextDouble() < options_.late_ratio) ts -= static_cast<int64_t>(Below(kMaxLatenessMs));
  e->timestamp_ms = std::clamp(ts, options_.start_ms, options_.end_ms - 1);

  e->source = "collector-";
  e->source += static_cast<char>('1' + Below(4));
  e->ingested_at_ms = 0;
  e->commit_seq = 0;
}

void WorkloadGenerator::MakeCorrection(const Event& original, Event* e) {
  *e = original;
  e->event_id = NewEventId();
  e->kind = EventKind::kCorrection;
  e->has_correction_ref = true;
  e->correction_original_event_id = original.event_id;
  e->correction_reason = kReasons[Below(std::size(kReasons))];
  // Mostly a partial refund; one in five bills a little more.
  const uint64_t q = static_cast<uint64_t>(std::max<__int128>(original.quantity, 1));
  if (Below(5) == 0) {
    e->quantity = static_cast<__int128>(1 + Below(std::max<uint64_t>(q / 10, 1)));
  } else {
    e->quantity = -static_cast<__int128>(1 + Below(q));
  }
  // Issued a little later, still in the month the original counts in.
  e->timestamp_ms = std::min(original.timestamp_ms + static_cast<int64_t>(Below(3600 * 1000)),
                             options_.end_ms - 1);
  e->source = "billing-adjuster";
}

bool WorkloadGenerator::CorrectRecent(Event* e) {
  const Event& original = recent_[(fresh_ - 1 - Below(recent_.size())) % kRecentCapacity];
  if (original.kind != EventKind::kUsage) return false;  // corrections are not corrected
  MakeCorrection(original, e);
  return true;
}

void WorkloadGenerator::Remember(const Event& e) {
  if (recent_.size() < kRecentCapacity) {
    recent_.push_back(e);
  } else {
    recent_[fresh_ % kRecentCapacity] = e;
  }
  ++fresh_;
}

bool WorkloadGenerator::Next(Event* event) {
  if (produced_ >= options_.events) return false;
  const double r = NextDouble();
  const size_t n = recent_.size();
  if (n > 0 && r < options_.duplicate_ratio) {
    // A retry re-emits one of the last kRetryWindow records verbatim.
    const uint64_t back = 1 + Below(std::min(n, kRetryWindow));
    *event = recent_[(fresh_ - back) % kRecentCapacity];
    ++duplicates_;
  } else if (n > 0 && r < options_.duplicate_ratio + options_.correction_ratio &&
             CorrectRecent(event)) {
    ++corrections_;
    Remember(*event);
  } else {
    MakeUsage(event);
    Remember(*event);
  }
  ++produced_;
  return true;
}

// ---------------------------------------------------------------------------------------------

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes written as-is
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(esc, sizeof(esc));
      }
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

void AppendEventJsonLine(const Event& e, std::string* out) {
  out->push_back('{');
  AppendKey("event_id", out);
  AppendJsonString(e.event_id, out);
  out->push_back(',');
  AppendKey("kind", out);
  AppendJsonString(KindName(e.kind), out);
  if (e.has_correction_ref) {
    out->push_back(',');
    AppendKey("correction_ref", out);
    out->push_back('{');
    AppendKey("original_event_id", out);
    AppendJsonString(e.correction_original_event_id, out);
    if (!e.correction_reason.empty()) {
      out->push_back(',');
      AppendKey("reason", out);
      AppendJsonString(e.correction_reason, out);
    }
    out->push_back('}');
  }
  out->push_back(',');
  AppendKey("account_id", out);
  AppendJsonString(e.account_id, out);
  if (e.subscription_id) {
    out->push_back(',');
    AppendKey("subscription_id", out);
    AppendJsonString(*e.subscription_id, out);
  }
  out->push_back(',');
  AppendKey("product_id", out);
  AppendJsonString(e.product_id, out);
  out->push_back(',');
  AppendKey("meter_id", out);
  AppendJsonString(e.meter_id, out);
  if (e.model_id) {
    out->push_back(',');
    AppendKey("model_id", out);
    AppendJsonString(*e.model_id, out);
  }
  out->push_back(',');
  AppendKey("timestamp_ms", out);
  AppendInt64(e.timestamp_ms, out);
  out->push_back(',');
  AppendKey("quantity", out);
  AppendInt128(e.quantity, out);
  out->push_back(',');
  AppendKey("unit", out);
  AppendJsonString(e.unit, out);
  out->push_back(',');
  AppendKey("source", out);
  AppendJsonString(e.source, out);
  if (!e.dimensions.empty()) {
    out->push_back(',');
    AppendKey("dimensions", out);
    out->push_back('{');
    bool first = true;
    for (const auto& [key, value] : e.dimensions) {
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(key, out);
      out->push_back(':');
      AppendJsonString(value, out);
    }
    out->push_back('}');
  }
  out->append("}\n");
}

}  // namespace usagedb::bench
