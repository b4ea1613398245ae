#include "tests/server/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace usagedb {
namespace testing {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

bool HttpClient::Connect() {
  Close();
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  ::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Close();
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  connects_++;
  buffer_.clear();
  return true;
}

void HttpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool HttpClient::SendRaw(std::string_view bytes) {
  if (fd_ < 0 && !Connect()) return false;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool HttpClient::PeerClosed(int timeout_ms) {
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN, 0};
  int r = ::poll(&p, 1, timeout_ms);
  if (r <= 0) return false;
  char c;
  ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
  return n <= 0;
}

ClientResponse HttpClient::ReadResponse() {
  ClientResponse res;
  if (fd_ < 0) return res;
  auto fill = [&]() -> bool {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms_) <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  };
  size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) {
      Close();
      return res;
    }
  }
  std::string head = buffer_.substr(0, head_end);
  buffer_.erase(0, head_end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  size_t sp = status_line.find(' ');
  if (sp == std::string::npos) {
    Close();
    return res;
  }
  int status = std::atoi(status_line.c_str() + sp + 1);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(pos, e - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      res.headers[Lower(line.substr(0, colon))] = v;
    }
    pos = e + 2;
  }
  if (status == 100) return ReadResponse();
  if (Lower(res.Header("transfer-encoding")) == "chunked") {
    // Chunks until the last one; a connection that ends first leaves complete = false (the
    // status and what arrived are kept).
    res.status = status;
    res.chunked = true;
    res.complete = false;
    while (true) {
      size_t line;
      while ((line = buffer_.find("\r\n")) == std::string::npos) {
        if (!fill()) {
          Close();
          return res;
        }
      }
      const size_t size = std::strtoull(buffer_.substr(0, line).c_str(), nullptr, 16);
      if (size == 0) {
        // The last chunk: no trailers from our server, so just its CRLF.
        while (buffer_.size() < line + 4) {
          if (!fill()) {
            Close();
            return res;
          }
        }
        buffer_.erase(0, line + 4);
        res.complete = true;
        break;
      }
      while (buffer_.size() < line + 2 + size + 2) {
        if (!fill()) {
          res.body.append(buffer_.substr(line + 2, std::min(buffer_.size() - line - 2, size)));
          Close();
          return res;
        }
      }
      res.body.append(buffer_, line + 2, size);
      buffer_.erase(0, line + 2 + size + 2);
    }
    if (Lower(res.Header("connection")) == "close") Close();
    return res;
  }
  size_t length = static_cast<size_t>(std::atoll(res.Header("content-length").c_str()));
  while (buffer_.size() < length) {
    if (!fill()) {
      Close();
      return res;
    }
  }
  res.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  res.status = status;
  if (Lower(res.Header("connection")) == "close") Close();
  return res;
}

ClientResponse HttpClient::Request(
    const std::string& method, const std::string& target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_ + "\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  for (int attempt = 0; attempt < 2; attempt++) {
    bool fresh = fd_ < 0;
    if (fresh && !Connect()) return ClientResponse();
    // A body that the server refuses early may not be written in full; the response still
    // comes (the server drains before closing).
    bool sent = SendRaw(req) && SendRaw(body);
    ClientResponse res = ReadResponse();
    if (res.status != 0 || fresh) return res;
    (void)sent;
    // A kept-alive connection the server had closed meanwhile: retry once on a new one.
    Close();
  }
  return ClientResponse();
}

}  // namespace testing
}  // namespace usagedb
