// A small blocking HTTP/1.1 client for tests and the ingest bench (POSIX sockets; responses
// with Content-Length, or chunked (GET /v1/export/parquet): decoded, with whether the final
// zero-length chunk arrived).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace usagedb {
namespace testing {

struct ClientResponse {
  int status = 0;                              // 0 = no response (connection closed or failed)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // decoded when chunked
  bool chunked = false;                        // Transfer-Encoding: chunked
  bool complete = true;                        // chunked: the terminating zero-length chunk arrived
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

// Not thread-safe: one connection, used by one thread.
class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
  ~HttpClient() { Close(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request (connecting first when needed) and reads its response. Content-Length
  // is added when there is a body or the method is POST.
  ClientResponse Request(const std::string& method, const std::string& target,
                         std::string_view body = {},
                         const std::vector<std::pair<std::string, std::string>>& headers = {});

  bool Connect();
  // Writes raw bytes (connecting first when needed). False when the peer closed.
  bool SendRaw(std::string_view bytes);
  // Reads one response; status 0 when the connection closed first.
  ClientResponse ReadResponse();
  // True when the peer has closed the connection (reads EOF or an error within timeout_ms).
  bool PeerClosed(int timeout_ms);
  void Close();

  bool connected() const { return fd_ >= 0; }
  int connects() const { return connects_; }
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }

 private:
  std::string host_;
  uint16_t port_;
  int fd_ = -1;
  int connects_ = 0;
  int timeout_ms_ = 120000;
  std::string buffer_;  // bytes read past the last response
};

}  // namespace testing
}  // namespace usagedb
