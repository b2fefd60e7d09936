// TLS sessions over memory BIOs (see tls.h).
#include "core/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstring>

#include "core/byte_buffer.h"

namespace async_engine {

namespace {

// X509_V_ERR_* as node:tls names them (its error codes are the OpenSSL constants' names).
const char* verifyCode(long v) {
  switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: return "UNABLE_TO_GET_ISSUER_CERT";
    case X509_V_ERR_UNABLE_TO_GET_CRL: return "UNABLE_TO_GET_CRL";
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE: return "UNABLE_TO_DECRYPT_CERT_SIGNATURE";
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: return "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "CERT_SIGNATURE_FAILURE";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "CERT_NOT_YET_VALID";
    case X509_V_ERR_CERT_HAS_EXPIRED: return "CERT_HAS_EXPIRED";
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD: return "ERROR_IN_CERT_NOT_BEFORE_FIELD";
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD: return "ERROR_IN_CERT_NOT_AFTER_FIELD";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "DEPTH_ZERO_SELF_SIGNED_CERT";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "SELF_SIGNED_CERT_IN_CHAIN";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY";
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG: return "CERT_CHAIN_TOO_LONG";
    case X509_V_ERR_CERT_REVOKED: return "CERT_REVOKED";
    case X509_V_ERR_INVALID_CA: return "INVALID_CA";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED: return "PATH_LENGTH_EXCEEDED";
    case X509_V_ERR_INVALID_PURPOSE: return "INVALID_PURPOSE";
    case X509_V_ERR_CERT_UNTRUSTED: return "CERT_UNTRUSTED";
    case X509_V_ERR_CERT_REJECTED: return "CERT_REJECTED";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return "ERR_TLS_CERT_ALTNAME_INVALID";
    default: return "EPROTO";
  }
}

bool isIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string opensslReason() {
  unsigned long e = ERR_get_error();
  std::string last;
  while (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    last = buf;
    e = ERR_get_error();
  }
  return last;
}

// Adds every certificate of a PEM bundle to `store`. False when none could be read.
bool addPemBundle(X509_STORE* store, const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return false;
  int added = 0;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(store, x) == 1) added++;
    X509_free(x);
  }
  ERR_clear_error();  // the end of the bundle reads as an error
  BIO_free(bio);
  return added > 0;
}

}  // namespace

namespace {

// The servername callback of a listener with SNI certificates: moves the session onto the
// context the name picks (SSL_set_SSL_CTX takes its own reference); no match or no name: the
// listener's own. Never refuses a handshake: a name with no certificate of its own gets the
// default one, as node:tls does.
int onServername(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  if (TlsContext* c = static_cast<TlsContext*>(arg)->sniFor(name)) SSL_set_SSL_CTX(ssl, c->ctx);
  return SSL_TLSEXT_ERR_OK;
}

// A new context for `cfg`; nullptr with the reason in *error.
std::shared_ptr<TlsContext> makeContext(const TlsConfig& cfg, const std::shared_ptr<size_t>& live,
                                        std::string* error) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(cfg.server ? TLS_server_method() : TLS_client_method());
  if (!raw) {
    *error = "SSL_CTX_new failed: " + opensslReason();
    return nullptr;
  }
  auto s = std::make_shared<TlsContext>(raw, live);
  // Sessions a client resumes (TLS 1.3 tickets, TLS 1.2 session ids) belong to this context.
  // A server's only: a client checks that a session it resumes has its own context, and
  // node:tls clients have none, so the sessions go both ways between the two.
  static const unsigned char kSessionContext[] = "async-engine";
  if (cfg.server) SSL_CTX_set_session_id_context(raw, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
  // Renegotiation is refused (TLS 1.3 has none).
  SSL_CTX_set_options(s->ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(s->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (!cfg.cert.empty()) {
    BIO* bio = BIO_new_mem_buf(cfg.cert.data(), static_cast<int>(cfg.cert.size()));
    X509* leaf = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    bool ok = leaf && SSL_CTX_use_certificate(s->ctx, leaf) == 1;
    X509_free(leaf);
    while (ok) {  // the rest of the chain
      X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      if (!x) break;
      if (SSL_CTX_add_extra_chain_cert(s->ctx, x) != 1) {
        X509_free(x);
        ok = false;
      }
    }
    if (bio) BIO_free(bio);
    if (!ok) {
      *error = "the certificate could not be read: " + opensslReason();
      return nullptr;
    }
    ERR_clear_error();
  }
  if (!cfg.key.empty()) {
    BIO* bio = BIO_new_mem_buf(cfg.key.data(), static_cast<int>(cfg.key.size()));
    EVP_PKEY* pkey = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
    if (bio) BIO_free(bio);
    bool ok = pkey && SSL_CTX_use_PrivateKey(s->ctx, pkey) == 1 && SSL_CTX_check_private_key(s->ctx) == 1;
    EVP_PKEY_free(pkey);
    if (!ok) {
      *error = "the private key could not be used: " + opensslReason();
      return nullptr;
    }
  }
  if (!cfg.ca.empty() && !addPemBundle(SSL_CTX_get_cert_store(s->ctx), cfg.ca)) {
    *error = "no certificate could be read from ca";
    return nullptr;
  }
  if (!cfg.server) {
    // As node:tls does: the chain is verified to the end (every error noted, none stopping it)
    // and the result judged once the handshake is done, so the code named is the one node:tls
    // names for the same chain.
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
  } else if (!cfg.ca.empty()) {
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (cfg.server && !cfg.alpn.empty()) {
    // The server's preference wins; with no protocol in common none is chosen and the
    // handshake goes on (the client sees no protocol).
    s->alpn = cfg.alpn;
    SSL_CTX_set_alpn_select_cb(
        s->ctx,
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
           void* arg) {
          auto* self = static_cast<TlsContext*>(arg);
          unsigned char* chosen = nullptr;
          const auto* offered = reinterpret_cast<const unsigned char*>(self->alpn.data());
          if (SSL_select_next_proto(&chosen, outlen, offered, static_cast<unsigned>(self->alpn.size()), in, inlen) !=
              OPENSSL_NPN_NEGOTIATED) {
            return SSL_TLSEXT_ERR_NOACK;
          }
          *out = chosen;
          return SSL_TLSEXT_ERR_OK;
        },
        s.get());
  }
  if (cfg.server && !cfg.sni.empty()) {
    // Each name's context is made as the listener's, with that name's key and certificate, so
    // the ca (which certificates a client may present), ALPN and verification stay the same
    // whichever the client asks for.
    for (const TlsConfig::SniEntry& e : cfg.sni) {
      TlsConfig one = cfg;
      one.key = e.key;
      one.cert = e.cert;
      one.sni.clear();
      std::string why;
      std::shared_ptr<TlsContext> c = makeContext(one, live, &why);
      if (!c) {
        *error = "sni[\"" + e.name + "\"]: " + why;
        return nullptr;
      }
      s->sni.emplace_back(e.name, std::move(c));
    }
    SSL_CTX_set_tlsext_servername_callback(s->ctx, onServername);
    SSL_CTX_set_tlsext_servername_arg(s->ctx, s.get());
  }
  return s;
}

// What shapes a context, as one string: each part with its length before it.
std::string contextKey(const TlsConfig& cfg) {
  std::string k;
  auto part = [&k](const std::string& v) {
    k += std::to_string(v.size());
    k += ':';
    k += v;
  };
  k += cfg.server ? 'S' : (cfg.verify ? 'V' : 'C');
  part(cfg.key);  // a client's own (mutual TLS): empty without
  part(cfg.cert);
  part(cfg.ca);
  part(cfg.alpn);
  k += std::to_string(cfg.sni.size());
  k += ':';
  for (const TlsConfig::SniEntry& e : cfg.sni) {
    part(e.name);
    part(e.key);
    part(e.cert);
  }
  return k;
}

}  // namespace

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx);
  --*live_;
}

TlsContext* TlsContext::sniFor(const char* name) const {
  if (sni.empty()) return nullptr;
  std::string n(name);
  for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& [pattern, c] : sni) {
    if (pattern == n) return c.get();
  }
  size_t dot = n.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  std::string wild = "*" + n.substr(dot);
  for (const auto& [pattern, c] : sni) {
    if (pattern == wild) return c.get();
  }
  return nullptr;
}

std::shared_ptr<TlsContext> TlsContexts::get(const TlsConfig& cfg, std::string* error) {
  std::string key = contextKey(cfg);
  for (size_t i = entries_.size(); i-- > 0;) {
    if (entries_[i].key == key) {
      Entry e = std::move(entries_[i]);
      entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
      entries_.push_back(std::move(e));
      return entries_.back().ctx;
    }
  }
  std::shared_ptr<TlsContext> ctx = makeContext(cfg, live_, error);
  if (!ctx) return nullptr;
  // The least recently used of the same side goes: clients never push out a listener's.
  size_t same = 0;
  for (const Entry& e : entries_) same += e.server == cfg.server ? 1 : 0;
  if (same >= (cfg.server ? kMaxServers : kMax)) {
    for (size_t i = 0; i < entries_.size(); i++) {
      if (entries_[i].server == cfg.server) {
        entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
  }
  entries_.push_back(Entry{std::move(key), cfg.server, ctx});
  return ctx;
}

void TlsContexts::dropServers() {
  for (size_t i = entries_.size(); i-- > 0;) {
    if (entries_[i].server) {
      entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
}

std::unique_ptr<TlsSession> TlsSession::create(const TlsConfig& cfg, TlsContexts& contexts, std::string* error) {
  std::unique_ptr<TlsSession> s(new TlsSession());
  s->ctx_ = contexts.get(cfg, error);
  if (!s->ctx_) return nullptr;
  ERR_clear_error();
  s->verify_ = !cfg.server && cfg.verify;
  s->ssl_ = SSL_new(s->ctx_->ctx);
  s->rbio_ = BIO_new(BIO_s_mem());
  s->wbio_ = BIO_new(BIO_s_mem());
  if (!s->ssl_ || !s->rbio_ || !s->wbio_) {
    if (s->rbio_) BIO_free(s->rbio_);
    if (s->wbio_) BIO_free(s->wbio_);
    s->rbio_ = s->wbio_ = nullptr;
    *error = "out of memory";
    return nullptr;
  }
  BIO_set_mem_eof_return(s->rbio_, -1);  // an empty input BIO means "more to come"
  SSL_set_bio(s->ssl_, s->rbio_, s->wbio_);
  if (cfg.server) {
    SSL_set_accept_state(s->ssl_);
  } else {
    SSL_set_connect_state(s->ssl_);
    if (!cfg.alpn.empty()) {
      SSL_set_alpn_protos(s->ssl_, reinterpret_cast<const unsigned char*>(cfg.alpn.data()),
                          static_cast<unsigned>(cfg.alpn.size()));
    }
    if (!cfg.session.empty()) {
      // A session that cannot be read is passed over and the handshake is a full one, as
      // node:tls does with such a `session`.
      const auto* p = reinterpret_cast<const unsigned char*>(cfg.session.data());
      SSL_SESSION* sess = d2i_SSL_SESSION(nullptr, &p, static_cast<long>(cfg.session.size()));
      if (sess) {
        SSL_set_session(s->ssl_, sess);  // takes its own reference
        SSL_SESSION_free(sess);
      }
      ERR_clear_error();
    }
    const std::string& name = cfg.servername;
    if (!name.empty()) {
      bool ip = isIpAddress(name);
      if (!ip) SSL_set_tlsext_host_name(s->ssl_, name.c_str());
      if (cfg.verify) {
        s->checkName_ = name;
        s->checkIp_ = ip;
        X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl_);
        if (ip) {
          X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          SSL_set1_host(s->ssl_, name.c_str());
        }
      }
    }
  }
  return s;
}

TlsSession::~TlsSession() {
  if (ssl_) SSL_free(ssl_);  // frees both BIOs; then ctx_ lets go of the context
}

void TlsSession::feed(const char* p, size_t n) {
  while (n > 0) {
    int w = BIO_write(rbio_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void TlsSession::drainOutput() {
  size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) return;
  std::vector<char> chunk(pending);
  int r = BIO_read(wbio_, chunk.data(), static_cast<int>(pending));
  if (r <= 0) return;
  chunk.resize(static_cast<size_t>(r));
  produced += static_cast<uint64_t>(r);
  out.push_back(std::move(chunk));
}

void TlsSession::failed(int ret) {
  int err = SSL_get_error(ssl_, ret);
  long v = SSL_get_verify_result(ssl_);
  if (v != X509_V_OK) {
    code_ = verifyCode(v);
    message_ = X509_verify_cert_error_string(v);
    ERR_clear_error();
    return;
  }
  std::string reason = opensslReason();
  code_ = "EPROTO";
  if (err == SSL_ERROR_SYSCALL && reason.empty()) reason = "the peer ended the TLS stream abruptly";
  message_ = reason.empty() ? "TLS failure" : reason;
}

int TlsSession::handshake() {
  if (established_) return 1;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  drainOutput();  // records to send, an alert included
  if (r == 1) {
    long v = SSL_get_verify_result(ssl_);
    if (verify_ && (v != X509_V_OK || !SSL_get0_peer_certificate(ssl_))) {
      code_ = v == X509_V_OK ? "EPROTO" : verifyCode(v);
      message_ = v == X509_V_OK ? "the peer sent no certificate" : X509_verify_cert_error_string(v);
      return -1;
    }
    if (verify_ && !checkName_.empty() && SSL_session_reused(ssl_) == 1) {
      // A resumed session keeps the verdict of the handshake that made it, whose name may
      // not be this connection's: the certificate is matched against this one's again.
      X509* peer = SSL_get0_peer_certificate(ssl_);
      int ok = checkIp_ ? X509_check_ip_asc(peer, checkName_.c_str(), 0)
                        : X509_check_host(peer, checkName_.data(), checkName_.size(),
                                          X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr);
      if (ok != 1) {
        ERR_clear_error();
        code_ = "ERR_TLS_CERT_ALTNAME_INVALID";
        message_ = "the resumed session's certificate does not match " + checkName_;
        return -1;
      }
    }
    established_ = true;
    return 1;
  }
  int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  failed(r);
  return -1;
}

int64_t TlsSession::decrypt(ByteBuffer* in, bool* closed) {
  int64_t total = 0;
  char buf[16 * 1024];
  for (;;) {
    ERR_clear_error();
    int r = SSL_read(ssl_, buf, sizeof buf);
    if (r > 0) {
      in->append(buf, static_cast<size_t>(r));
      in->settle();  // `buf` is reused
      total += r;
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    drainOutput();  // a KeyUpdate's answer, an alert
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return total;
    if (err == SSL_ERROR_ZERO_RETURN) {
      *closed = true;
      return total;
    }
    failed(r);
    return -1;
  }
}

bool TlsSession::encrypt(const char* p, size_t n) {
  while (n > 0) {
    ERR_clear_error();
    int r = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    drainOutput();
    if (r <= 0) {
      failed(r);
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void TlsSession::closeNotify() {
  if (notifySent_ || !established_) return;
  notifySent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  drainOutput();
}

std::string TlsSession::alpnProtocol() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

std::string TlsSession::servername() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string(name) : std::string();
}

std::string TlsSession::sessionDer() const {
  SSL_SESSION* sess = SSL_get1_session(ssl_);
  if (!sess) return std::string();
  std::string der;
  if (SSL_SESSION_is_resumable(sess) == 1) {
    int len = i2d_SSL_SESSION(sess, nullptr);
    if (len > 0) {
      der.resize(static_cast<size_t>(len));
      auto* p = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_SSL_SESSION(sess, &p) != len) der.clear();
    }
  }
  SSL_SESSION_free(sess);
  return der;
}

void TlsSession::credit(size_t n) {
  sent += n;
  while (n > 0 && !out.empty()) {
    size_t left = out.front().size() - outFrontSent;
    if (n < left) {
      outFrontSent += n;
      return;
    }
    n -= left;
    out.pop_front();
    outFrontSent = 0;
  }
}

}  // namespace async_engine
