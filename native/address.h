// Socket addresses between JavaScript and the kernel: numeric hosts and Unix paths parsed into
// a sockaddr, and a socket's own or peer address described for JavaScript.
#pragma once

#include <sys/socket.h>

#include <napi.h>

#include <string>

namespace async_engine {

// Parses a numeric IPv4/IPv6 address and port, or a Unix socket path (port < 0).
bool parseAddress(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len);

// [address, port, family] of a socket's own or peer address; the path for a Unix socket.
Napi::Value describe(Napi::Env env, const sockaddr_storage& ss, socklen_t len);

}  // namespace async_engine
