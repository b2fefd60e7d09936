// The codec (see codec.h): ops in, finished ops out.
#include "codec.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "address.h"

namespace async_engine {

const char* syscallName(Syscall s) {
  switch (s) {
    case Syscall::kAccept:
      return "accept";
    case Syscall::kConnect:
      return "connect";
    case Syscall::kRecv:
      return "recv";
    case Syscall::kSend:
      return "send";
    case Syscall::kOpen:
      return "open";
    case Syscall::kRead:
      return "read";
    case Syscall::kWrite:
      return "write";
    case Syscall::kFsync:
      return "fsync";
    case Syscall::kStat:
      return "statx";
    case Syscall::kGetaddrinfo:
      return "getaddrinfo";
    case Syscall::kShutdown:
      return "shutdown";
    default:
      return nullptr;
  }
}

// ---- decoding ----

namespace {

// A file position: a number, or -1 (undefined: the sequential position).
int64_t position(const Napi::Value& x) {
  return x.IsNumber() ? static_cast<int64_t>(x.As<Napi::Number>().DoubleValue()) : -1;
}

// A byte bound: negative or past 2^53 means none.
size_t maxBytes(const Napi::Value& x) {
  double d = x.As<Napi::Number>().DoubleValue();
  return d < 0 || d >= 9.0e15 ? SIZE_MAX : static_cast<size_t>(d);
}

size_t count(const Napi::Value& x) { return static_cast<size_t>(x.As<Napi::Number>().DoubleValue()); }

// Pre-registered replies of a line read, [_, expect, reply, max]: the bytes of expect and reply
// when they are Buffers, and how many mismatches get the reply (-1: unbounded; none without one).
void decodeLineFilter(Op* op, const Napi::Array& arr) {
  Napi::Value e = arr.Get(1u), r = arr.Get(2u);
  op->filtered = true;
  if (e.IsBuffer()) {
    auto buf = e.As<Napi::Buffer<char>>();
    op->expect.assign(buf.Data(), buf.Length());
  }
  if (r.IsBuffer()) {
    auto buf = r.As<Napi::Buffer<char>>();
    op->reply.assign(buf.Data(), buf.Data() + buf.Length());
  }
  op->mismatchLeft = r.IsBuffer() ? arr.Get(3u).As<Napi::Number>().Int64Value() : 0;
}

const char* familyName(OpFamily f) {
  switch (f) {
    case OpFamily::kRead:
      return "read";
    case OpFamily::kWrite:
      return "write";
    case OpFamily::kAccept:
      return "accept";
    case OpFamily::kConnect:
      return "connect";
    case OpFamily::kFile:
      return "file";
    case OpFamily::kTimer:
      return "timer";
    case OpFamily::kResolve:
      return "resolve";
  }
  return "";
}

}  // namespace

Op* decodeOp(Napi::Env env, EngineCore& core, Handle* closedHandle, const Napi::Value* v) {
  int32_t kind = v[0].As<Napi::Number>().Int32Value();
  if (kind < 0 || static_cast<size_t>(kind) >= kOpCount) {
    Napi::TypeError::New(env, "unknown op kind " + std::to_string(kind)).ThrowAsJavaScriptException();
    return nullptr;
  }
  Op* op = core.newOp();
  op->kind = static_cast<OpKind>(kind);
  op->id = v[1].As<Napi::Number>().Int64Value();
  double handle = v[2].As<Napi::Number>().DoubleValue();
  if (handle > 0) {
    op->h = core.handle(static_cast<uint64_t>(handle));
    if (!op->h) op->h = closedHandle;
  }
  op->timeoutMs = v[3].As<Napi::Number>().DoubleValue();
  const Napi::Value& a = v[4];
  const Napi::Value& b = v[5];
  // What a and b mean for each kind: core/ops.def.
  switch (op->kind) {
    case OpKind::kReadUntil:
      if (a.IsArray()) {  // several delimiters, as Buffers
        auto arr = a.As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); i++) {
          auto buf = arr.Get(i).As<Napi::Buffer<char>>();
          op->delims.emplace_back(buf.Data(), buf.Length());
        }
        op->maxBytes = maxBytes(b);
        break;
      }
      [[fallthrough]];
    case OpKind::kReadGlob: {
      if (a.IsBuffer()) {
        auto buf = a.As<Napi::Buffer<char>>();
        op->pattern.assign(buf.Data(), buf.Length());
        op->asString = false;  // a glob given as bytes: its lines come back as bytes too
      } else {
        op->pattern = a.As<Napi::String>().Utf8Value();
      }
      op->maxBytes = maxBytes(b);
      break;
    }
    case OpKind::kReadLine:
      op->maxBytes = maxBytes(a);
      if (b.IsArray()) {
        // With pre-registered replies: [asString, expect (a Buffer, true: a RegExp, or null:
        // any line), reply (a Buffer), how many mismatches get it (-1: unbounded)].
        auto arr = b.As<Napi::Array>();
        Napi::Value s = arr.Get(0u), e = arr.Get(1u);
        op->asString = s.IsBoolean() && s.As<Napi::Boolean>();
        // expect true: a RegExp, matched in JavaScript (the lines buffered reported together).
        op->expectJs = e.IsBoolean() && e.As<Napi::Boolean>();
        op->expectAny = !e.IsBuffer() && !op->expectJs;
        decodeLineFilter(op, arr);
        break;
      }
      op->asString = b.IsBoolean() && b.As<Napi::Boolean>();
      break;
    case OpKind::kReadRegex:
      op->maxBytes = maxBytes(a);
      break;
    case OpKind::kReadLines:
      op->maxBytes = maxBytes(a);
      if (b.IsArray()) {
        // With a string expect matched here: [count, expect (a Buffer), reply (a Buffer, or
        // null: none), how many mismatches get it (-1: unbounded)].
        auto arr = b.As<Napi::Array>();
        op->n = count(arr.Get(0u));
        decodeLineFilter(op, arr);
        break;
      }
      op->n = count(b);
      break;
    case OpKind::kReadPrefixed:
      if (a.IsBuffer()) {
        auto buf = a.As<Napi::Buffer<char>>();
        op->pattern.assign(buf.Data(), buf.Length());
      } else if (a.IsNumber()) {
        op->n = count(a);
      }
      op->maxBytes = maxBytes(b);
      break;
    case OpKind::kReadAll:
      op->maxBytes = maxBytes(a);
      op->position = position(b);
      break;
    case OpKind::kReadChunk:
    case OpKind::kReadExactly:
      op->n = count(a);
      op->position = position(b);
      break;
    case OpKind::kPeek:
      op->n = count(a);
      break;
    case OpKind::kReadInto: {
      // A reference keeps the typed array (and its memory) alive until the op is freed; the
      // memory is looked up again whenever bytes are copied there (IntoTargets::intoMemory).
      auto arr = a.As<Napi::TypedArray>();
      napi_ref ref = nullptr;
      if (napi_create_reference(env, arr, 1, &ref) != napi_ok) {
        delete op;
        return nullptr;
      }
      op->into = ref;
      op->userLen = arr.ByteLength();
      op->position = position(b);
      break;
    }
    case OpKind::kOpen: {
      op->path = a.As<Napi::String>().Utf8Value();
      double packed = b.As<Napi::Number>().DoubleValue();  // flags + mode * 2^32
      op->openMode = static_cast<unsigned>(packed / 4294967296.0);
      op->openFlags = static_cast<int>(static_cast<int64_t>(packed) - static_cast<int64_t>(op->openMode) * 4294967296LL);
      op->h = nullptr;
      break;
    }
    case OpKind::kFsync:
      op->dataOnly = a.IsBoolean() && a.As<Napi::Boolean>();
      break;
    case OpKind::kStat:
      if (a.IsString()) {
        op->path = a.As<Napi::String>().Utf8Value();
        op->h = nullptr;
      }
      break;
    case OpKind::kWrite: {
      op->position = position(b);
      if (a.IsBuffer()) {
        auto buf = a.As<Napi::Buffer<char>>();
        op->data.assign(buf.Data(), buf.Data() + buf.Length());
      } else if (a.IsArray()) {
        auto arr = a.As<Napi::Array>();
        for (uint32_t i = 0; i < arr.Length(); i++) {
          auto buf = arr.Get(i).As<Napi::Buffer<char>>();
          op->data.insert(op->data.end(), buf.Data(), buf.Data() + buf.Length());
        }
      }
      break;
    }
    case OpKind::kConnect: {
      if (a.IsString()) {
        sockaddr_storage ss;
        socklen_t len;
        if (!parseAddress(a.As<Napi::String>(), b.As<Napi::Number>().Int32Value(), &ss, &len)) {
          delete op;
          Napi::TypeError::New(env, "not a numeric address or a valid path").ThrowAsJavaScriptException();
          return nullptr;
        }
        op->addrs.push_back(ss);
        op->addrLens.push_back(len);
      }
      op->h = nullptr;
      break;
    }
    case OpKind::kResolve:
      op->host = a.As<Napi::String>().Utf8Value();
      op->service = b.IsString() ? b.As<Napi::String>().Utf8Value() : std::string();
      break;
    case OpKind::kTlsHandshake: {
      // A bad key or certificate is the caller's mistake: a synchronous error, as node:tls has.
      auto o = a.As<Napi::Object>();
      auto str = [&o](const char* name) {
        Napi::Value v = o.Get(name);
        return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
      };
      TlsConfig cfg;
      cfg.server = o.Get("server").ToBoolean();
      cfg.key = str("key");
      cfg.cert = str("cert");
      cfg.ca = str("ca");
      cfg.servername = str("servername");
      cfg.verify = o.Get("verify").ToBoolean();
      Napi::Value alpn = o.Get("alpn");  // a Buffer: the wire format
      if (alpn.IsBuffer()) {
        auto b = alpn.As<Napi::Buffer<char>>();
        cfg.alpn.assign(b.Data(), b.Length());
      }
      Napi::Value sni = o.Get("sni");  // [name, key, cert, name, key, cert, ...]
      if (sni.IsArray()) {
        auto arr = sni.As<Napi::Array>();
        for (uint32_t i = 0; i + 2 < arr.Length(); i += 3) {
          cfg.sni.push_back({arr.Get(i).As<Napi::String>().Utf8Value(), arr.Get(i + 1).As<Napi::String>().Utf8Value(),
                             arr.Get(i + 2).As<Napi::String>().Utf8Value()});
        }
      }
      Napi::Value session = o.Get("session");  // a Buffer: DER
      if (session.IsBuffer()) {
        auto b = session.As<Napi::Buffer<char>>();
        cfg.session.assign(b.Data(), b.Length());
      }
      std::string error;
      op->tls = TlsSession::create(cfg, core.tlsContexts(), &error);
      if (!op->tls) {
        delete op;
        Napi::Error err = Napi::TypeError::New(env, "invalid TLS options: " + error);
        err.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
        err.ThrowAsJavaScriptException();
        return nullptr;
      }
      break;
    }
    case OpKind::kAcceptWhen: {
      auto arr = a.As<Napi::Array>();
      auto f = std::make_shared<AcceptFilter>();
      Napi::Value expect = arr.Get(0u);
      if (expect.IsBuffer()) {
        auto buf = expect.As<Napi::Buffer<char>>();
        f->expect.assign(buf.Data(), buf.Length());
      } else {
        f->any = true;
      }
      Napi::Value reply = arr.Get(1u);
      if (reply.IsBuffer()) {
        auto buf = reply.As<Napi::Buffer<char>>();
        f->reply.assign(buf.Data(), buf.Length());
      }
      double ms = arr.Get(2u).As<Napi::Number>().DoubleValue();
      constexpr double kMaxMs = 4.0e12;  // saturates, as an op's deadline does
      f->timeoutNs = ms > 0 ? static_cast<int64_t>((ms < kMaxMs ? ms : kMaxMs) * 1e6) : 0;
      f->maxBytes = maxBytes(b);
      Napi::Value prefix = arr.Get(3u);
      f->prefix = prefix.IsBoolean() && prefix.As<Napi::Boolean>();
      op->filter = std::move(f);
      break;
    }
    case OpKind::kAccept:
    case OpKind::kSleep:
    case OpKind::kSoon:
    case OpKind::kShutdown:
      break;
  }
  return op;
}

Napi::Value opKinds(Napi::Env env) {
  auto out = Napi::Array::New(env, kOpCount);
  for (size_t i = 0; i < kOpCount; i++) {
    const OpInfo& info = kOps[i];
    auto o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, info.name));
    o.Set("kind", Napi::Number::New(env, static_cast<double>(i)));
    o.Set("js", Napi::String::New(env, info.js));
    o.Set("family", Napi::String::New(env, familyName(info.family)));
    o.Set("a", Napi::String::New(env, info.a));
    o.Set("b", Napi::String::New(env, info.b));
    o.Set("result", Napi::String::New(env, info.result));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// ---- encoding ----

namespace {

// A stat's result as JavaScript reads it: 14 float64 values (size, mode, uid, gid, nlink, ino,
// dev, blksize, blocks, atime, mtime, ctime, birthtime in ms; 0 without one), delivered as bytes.
void statToBytes(Completion& c) {
  struct statx s {};
  std::memcpy(&s, c.data.data(), std::min(c.data.size(), sizeof s));
  auto ts = [](const statx_timestamp& t) { return static_cast<double>(t.tv_sec) * 1e3 + t.tv_nsec / 1e6; };
  double v[14] = {static_cast<double>(s.stx_size),  static_cast<double>(s.stx_mode),
                  static_cast<double>(s.stx_uid),   static_cast<double>(s.stx_gid),
                  static_cast<double>(s.stx_nlink), static_cast<double>(s.stx_ino),
                  static_cast<double>(makedev(s.stx_dev_major, s.stx_dev_minor)),
                  static_cast<double>(s.stx_blksize), static_cast<double>(s.stx_blocks),
                  ts(s.stx_atime), ts(s.stx_mtime), ts(s.stx_ctime),
                  (s.stx_mask & STATX_BTIME) ? ts(s.stx_btime) : 0.0, 0.0};
  c.kind = PayloadKind::kBytes;
  c.data.assign(reinterpret_cast<const char*>(v), sizeof v);
}

}  // namespace

bool BatchEncoder::inArena(const Completion& c) {
  return (c.kind == PayloadKind::kBytes || c.kind == PayloadKind::kString) && c.data.size() <= kArenaMax;
}

// Whether the op's slot in `payloads` is used: anything beside the result, or the system call a
// failure came from.
bool BatchEncoder::hasPayload(const Completion& c) {
  return c.kind != PayloadKind::kNone || (c.result < 0 && c.syscall != Syscall::kNone);
}

void BatchEncoder::forget() {
  f64Ref_.Reset();
  f64_ = nullptr;
  f64Cap_ = 0;
  arenaRef_.Reset();
  arena_ = nullptr;
  arenaCap_ = 0;
}

Batch BatchEncoder::take(Napi::Env env, EngineCore& core) {
  double* f64Before = f64_;
  char* arenaBefore = arena_;
  batch_.clear();
  batch_.swap(core.ready());  // the core keeps filling the other vector, capacity and all
  size_t n = batch_.size();
  if (n * kStride > f64Cap_ || f64Ref_.IsEmpty()) {
    size_t cap = f64Cap_ ? f64Cap_ : 1280;
    while (cap < n * kStride) cap *= 2;
    Napi::Float64Array arr = Napi::Float64Array::New(env, cap);
    f64Ref_ = Napi::Persistent(arr);
    f64_ = arr.Data();
    f64Cap_ = cap;
  }
  size_t arenaNeed = 0;
  for (Completion& c : batch_) {
    if (c.kind == PayloadKind::kStat) statToBytes(c);
    if (inArena(c)) arenaNeed += c.data.size();
  }
  if (arenaNeed > arenaCap_ || arenaRef_.IsEmpty()) {
    size_t cap = arenaCap_ ? arenaCap_ : 64 * 1024;
    while (cap < arenaNeed) cap *= 2;
    Napi::Buffer<char> buf = Napi::Buffer<char>::New(env, cap);
    arenaRef_ = Napi::Persistent(buf);
    arena_ = buf.Data();
    arenaCap_ = cap;
  }
  napi_value payloads = nullptr;
  size_t settled = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    Completion& c = batch_[i];
    double* f = f64_ + kStride * i;
    f[0] = static_cast<double>(c.id);
    f[1] = static_cast<double>(c.result);
    f[2] = -1;
    f[3] = 0;
    f[4] = static_cast<double>(c.rest);
    if (c.result != kProgress) settled++;
    if (inArena(c)) {
      std::memcpy(arena_ + at, c.data.data(), c.data.size());
      f[2] = static_cast<double>(at);
      f[3] = static_cast<double>(c.data.size());
      at += c.data.size();
    } else if (hasPayload(c)) {
      if (!payloads) payloads = Napi::Array::New(env, n);
      Napi::Value(env, payloads).As<Napi::Array>().Set(static_cast<uint32_t>(i), payload(env, c));
    }
  }
  core.delivered(settled);
  bool plain = f64_ == f64Before && arena_ == arenaBefore && !payloads;
  return Batch{Napi::Number::New(env, static_cast<double>(n)), f64Ref_.Value(),
               payloads ? payloads : env.Undefined(), arenaRef_.Value(), plain};
}

// An op's payload, as src/engine reads it (errors.ts, errorFromNative, for failures).
Napi::Value BatchEncoder::payload(Napi::Env env, Completion& c) {
  if (c.result < 0 && c.result != kProgress && c.kind != PayloadKind::kBytes) {
    if (c.kind == PayloadKind::kResolveError) {  // [EAI_* value, errno]
      auto a = Napi::Array::New(env, 2);
      a.Set(0u, Napi::Number::New(env, c.gaiError));
      a.Set(1u, Napi::Number::New(env, c.gaiErrno));
      return a;
    }
    const char* sc = syscallName(c.syscall);
    Napi::Value name = sc ? Napi::String::New(env, sc) : env.Undefined();
    if (c.kind != PayloadKind::kWritten) return name;
    auto a = Napi::Array::New(env, 2);  // a failed write: [syscall, bytes written]
    a.Set(0u, name);
    a.Set(1u, Napi::Number::New(env, static_cast<double>(c.written)));
    return a;
  }
  switch (c.kind) {
    case PayloadKind::kBytes:
      return Napi::Buffer<char>::Copy(env, c.data.data(), c.data.size());
    case PayloadKind::kString:
      return Napi::String::New(env, c.data.data(), c.data.size());
    case PayloadKind::kSocket:
    case PayloadKind::kFile: {
      auto a = Napi::Array::New(env, 2);
      a.Set(0u, Napi::Number::New(env, static_cast<double>(c.handle)));
      a.Set(1u, Napi::Number::New(env, c.fd));
      return a;
    }
    case PayloadKind::kSocketLine: {
      auto a = Napi::Array::New(env, 3);
      a.Set(0u, Napi::Number::New(env, static_cast<double>(c.handle)));
      a.Set(1u, Napi::Number::New(env, c.fd));
      a.Set(2u, Napi::Buffer<char>::Copy(env, c.data.data(), c.data.size()));
      return a;
    }
    case PayloadKind::kLines:
      if (c.linesAsBytes) {  // lines of an op with a non-UTF-8 encoding: bytes, decoded in JS
        auto a = Napi::Array::New(env, c.list.size());
        for (uint32_t i = 0; i < c.list.size(); i++) {
          a.Set(i, Napi::Buffer<char>::Copy(env, c.list[i].data(), c.list[i].size()));
        }
        return a;
      }
      [[fallthrough]];
    case PayloadKind::kAddrs: {
      auto a = Napi::Array::New(env, c.list.size());
      for (uint32_t i = 0; i < c.list.size(); i++) a.Set(i, Napi::String::New(env, c.list[i]));
      return a;
    }
    case PayloadKind::kProgress: {
      auto a = Napi::Array::New(env, 3);
      a.Set(0u, Napi::Buffer<char>::Copy(env, c.data.data(), c.data.size()));
      a.Set(1u, Napi::Boolean::New(env, c.progressEof));
      a.Set(2u, Napi::Boolean::New(env, c.progressOverLimit));
      return a;
    }
    default:
      return env.Undefined();
  }
}

}  // namespace async_engine
