// TLS on a socket, in the core and the same for every backend: an OpenSSL session over memory
// BIOs. Ciphertext the backend receives is fed in and the plaintext lands in the socket's input
// buffer, where framing runs as on a plain socket; writes are encrypted into one ordered stream
// of records that the core sends. Node's own OpenSSL serves (the addon links no second copy).
// Engine thread only: every call on a session is made from the core's thread.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace async_engine {

class ByteBuffer;

// What a handshake op is given (native/codec.cc decodes it from JavaScript's options).
struct TlsConfig {
  bool server = false;
  std::string key;         // PEM
  std::string cert;        // PEM (a chain: leaf first)
  std::string ca;          // PEM bundle of trusted certificates; empty: none
  std::string servername;  // client: SNI and the name the certificate must match
  bool verify = true;      // client: reject a certificate that does not verify
  std::string alpn;        // ALPN protocols, in the wire format (length-prefixed names); empty: none
  // Server: a certificate per name the client asks for (SNI). `name` is lowercase, exact or a
  // one-label wildcard ("*.example.test"); no match, or no SNI: the listener's key and cert.
  struct SniEntry {
    std::string name;
    std::string key;   // PEM
    std::string cert;  // PEM chain
  };
  std::vector<SniEntry> sni;
  std::string session;  // client: a session to resume, DER (i2d_SSL_SESSION); empty: none
};

// An SSL_CTX: what a configuration makes once (the key and certificate parsed, the trusted
// certificates loaded), shared by every session made from that configuration.
struct TlsContext {
  TlsContext(SSL_CTX* c, std::shared_ptr<size_t> live) : ctx(c), live_(std::move(live)) { ++*live_; }
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* ctx;
  std::string alpn;  // server: the protocols it offers, in its order of preference
  // Server: a context per SNI name (same ca, ALPN and verification, its own key and cert); the
  // servername callback moves a session onto the one its name picks. Owned here, so they live
  // as long as the listener's context and every session made from it.
  std::vector<std::pair<std::string, std::shared_ptr<TlsContext>>> sni;
  // The context for SNI name `name` (any case), or nullptr: exact names first, then a wildcard
  // standing for the name's first label.
  TlsContext* sniFor(const char* name) const;

 private:
  std::shared_ptr<size_t> live_;  // the engine's count of live contexts
};

// An engine's contexts, keyed by what shapes them: for a server the key, certificate, SNI
// certificates, ca and ALPN list; for a client the ca, whether it verifies, its own key and
// certificate, and the ALPN list. Per-connection things (SNI, the name checked, the session
// resumed, the verdict) go on each session's SSL, never on a context. At most kMax client
// contexts are kept, the least recently used dropped first; server contexts are kept until the
// last listener closes (up to kMaxServers), so a listener's context, and the session ticket key
// in it, outlive any number of client configurations. A session holds its own reference, so a
// dropped context lives until its last session is gone.
class TlsContexts {
 public:
  static constexpr size_t kMax = 16;
  static constexpr size_t kMaxServers = 256;
  TlsContexts() : live_(std::make_shared<size_t>(0)) {}
  // The context for `cfg`, made if none is kept; nullptr with the reason in *error.
  std::shared_ptr<TlsContext> get(const TlsConfig& cfg, std::string* error);
  // Lets go of the server contexts (the last listener closed): each is freed once its last
  // socket is gone.
  void dropServers();
  // Contexts alive, kept or held by a session.
  size_t live() const { return *live_; }

 private:
  struct Entry {
    std::string key;
    bool server;
    std::shared_ptr<TlsContext> ctx;
  };
  std::vector<Entry> entries_;  // most recently used last
  std::shared_ptr<size_t> live_;
};

class TlsSession {
 public:
  // A session for `cfg` on a context from `contexts`, or nullptr with the reason in *error.
  static std::unique_ptr<TlsSession> create(const TlsConfig& cfg, TlsContexts& contexts, std::string* error);
  ~TlsSession();

  // Ciphertext received from the peer.
  void feed(const char* p, size_t n);
  // Advances the handshake: 1 done, 0 wants more bytes, -1 failed (see code()/message()).
  int handshake();
  bool established() const { return established_; }
  // Decrypts what was fed into `in`. Returns plaintext bytes added, or -1 on a failure
  // (code()/message()); *closed is set when the peer sent close_notify.
  int64_t decrypt(ByteBuffer* in, bool* closed);
  // Encrypts plaintext into the record stream. False on a failure.
  bool encrypt(const char* p, size_t n);
  // Queues close_notify (once).
  void closeNotify();

  // The ciphertext to send, in order: chunks; `sent` bytes of the front one are out already.
  // A chunk never moves once queued, so a backend may read it until its send is reported.
  std::deque<std::vector<char>> out;
  size_t outFrontSent = 0;
  uint64_t produced = 0;  // ciphertext bytes queued in all
  uint64_t sent = 0;      // of them, taken by the kernel
  bool hasOutput() const { return !out.empty(); }
  // Credits `n` bytes taken by the kernel.
  void credit(size_t n);

  // The failure: a node:tls-style code (DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID,
  // ..., or EPROTO) and OpenSSL's reason.
  const std::string& code() const { return code_; }
  const std::string& message() const { return message_; }
  SSL* ssl() const { return ssl_; }
  // The ALPN protocol agreed on; empty when none.
  std::string alpnProtocol() const;
  // Server: the SNI name the client sent; empty when none.
  std::string servername() const;
  // Client: the latest resumable session as DER (i2d_SSL_SESSION); empty when there is none
  // yet (TLS 1.3 tickets arrive after the handshake).
  std::string sessionDer() const;
  bool sessionReused() const { return ssl_ && SSL_session_reused(ssl_) == 1; }

 private:
  TlsSession() = default;
  void drainOutput();
  void failed(int ret);

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext in (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext out (owned by ssl_)
  bool established_ = false;
  bool notifySent_ = false;
  bool verify_ = false;  // client: judge the peer's chain once the handshake is done
  std::string checkName_;  // client: the name (or IP) the certificate must match; empty: none
  bool checkIp_ = false;   // checkName_ is an IP address
  std::string code_;
  std::string message_;
};

}  // namespace async_engine
