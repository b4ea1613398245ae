// HTTP/1.1 server (Boost.Beast/Asio, kept inside http_server.cc, the only translation unit
// that includes Beast): keep-alive, a small pool of network I/O threads, a pool of handler
// threads (handlers may block in the WAL's fsync), request size and time limits, and the
// graceful shutdown of SPEC §4.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/http_types.h"
#include "usagedb/status.h"

namespace usagedb {
namespace server {

class ServerMetrics;

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // numeric IPv4 or IPv6 address
  uint16_t port = 8080;            // 0 = any free port (see HttpServer::port())
  int threads = 0;                 // network I/O threads; 0 = max(2, hardware threads)
  // Threads that run handlers; 0 = max(8, 4 x hardware threads). Strict-mode ingest blocks a
  // handler for its group-commit fsync: concurrent committers share one fsync only when
  // more handlers than cores can wait at once.
  int handler_threads = 0;
  // A request whose body (as received, before gzip) is larger gets 413 and the connection is
  // closed; the decompressed size is checked by the handler.
  uint64_t max_body_bytes = 32u << 20;
  // Larger request heads get 431 and the connection is closed.
  uint32_t max_header_bytes = 64u << 10;
  // Time to receive one request (head and body), and the idle time of a kept-alive connection.
  int64_t request_timeout_ms = 30000;
};

class HttpServer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Binds, listens and starts the worker threads. `handler` (and `metrics`, may be null) are
  // not owned and must outlive the server. IOError when the address cannot be bound.
  static Result<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                   RequestHandler* handler, ServerMetrics* metrics);
  virtual ~HttpServer() = default;

  // The port actually bound.
  virtual uint16_t port() const = 0;

  // SPEC §4 shutdown: stops accepting, drops idle connections and requests not fully
  // received, lets requests already received finish and answer (their connections then
  // close). Returns true when they all finished before `deadline`; otherwise shuts down the
  // sockets of the rest (their handlers run on, their responses are lost) and returns false.
  // Then stops the workers' event loop. Call once.
  virtual bool Shutdown(TimePoint deadline) = 0;

  // Stops the handler pool (queued requests are dropped) and waits for every thread until
  // `deadline`: true when all exited (joined). False means a handler is still running
  // (blocked in the database); the destructor then waits for it. REQUIRES: after Shutdown.
  virtual bool Join(TimePoint deadline) = 0;
};

}  // namespace server
}  // namespace usagedb
