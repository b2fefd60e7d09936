// N-API bindings: the NativeEngine class that the TypeScript engine drives, the Node event-loop
// integration of `auto` drive, and the conversion of finished ops into one batch for JavaScript.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <napi.h>

#include "backends/factory.h"
#include "core/engine_core.h"

namespace async_engine {

namespace {

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
    default:
      return nullptr;
  }
}

// Parses a numeric IPv4/IPv6 address and port, or a Unix socket path (port < 0).
bool parseAddress(const std::string& host, int port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof *ss);
  if (port < 0) {
    auto* un = reinterpret_cast<sockaddr_un*>(ss);
    if (host.empty() || host.size() >= sizeof un->sun_path) return false;
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, host.data(), host.size());
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + host.size() + 1);
    return true;
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (::inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// [address, port, family] of a socket's own or peer address; the path for a Unix socket.
Napi::Value describe(Napi::Env env, const sockaddr_storage& ss, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    auto arr = Napi::Array::New(env, 3);
    arr.Set(0u, Napi::String::New(env, buf));
    arr.Set(1u, Napi::Number::New(env, ntohs(a->sin_port)));
    arr.Set(2u, Napi::String::New(env, "IPv4"));
    return arr;
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    auto arr = Napi::Array::New(env, 3);
    arr.Set(0u, Napi::String::New(env, buf));
    arr.Set(1u, Napi::Number::New(env, ntohs(a->sin6_port)));
    arr.Set(2u, Napi::String::New(env, "IPv6"));
    return arr;
  }
  if (ss.ss_family == AF_UNIX) {
    auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(un->sun_path, strnlen(un->sun_path, n));
    return Napi::String::New(env, path);
  }
  return env.Undefined();
}

Napi::Error errnoError(Napi::Env env, int64_t negErrno, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + " failed: " + std::strerror(static_cast<int>(-negErrno)));
  e.Set("errno", Napi::Number::New(env, static_cast<double>(negErrno)));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

// The options of `impl`'s table row found in `given`. JavaScript checked the ranges; a value out
// of them here still never wraps: it is left out, and the backend takes its default.
BackendOptions backendOptions(const std::string& impl, bool manual, Napi::Value given) {
  BackendOptions options;
  options.manualDrive = manual;
  const BackendEntry* row = findBackend(impl);
  if (!row || !given.IsObject()) return options;
  Napi::Object o = given.As<Napi::Object>();
  for (const std::string& key : row->optionKeys) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) continue;
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 65536) options.values.emplace_back(key, static_cast<int>(d));
  }
  return options;
}

}  // namespace

class NativeEngine : public Napi::ObjectWrap<NativeEngine>, public IntoTargets {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod<&NativeEngine::Listen>("listen"),
                           InstanceMethod<&NativeEngine::Adopt>("adopt"),
                           InstanceMethod<&NativeEngine::Close>("close"),
                           InstanceMethod<&NativeEngine::Chain>("chain"),
                           InstanceMethod<&NativeEngine::RegexVerdict>("regexVerdict"),
                           InstanceMethod<&NativeEngine::RunOnce>("runOnce"),
                           InstanceMethod<&NativeEngine::Shutdown>("shutdown"),
                           InstanceMethod<&NativeEngine::StatsJs>("stats"),
                           InstanceMethod<&NativeEngine::Buffered>("bufferedBytes"),
                           InstanceMethod<&NativeEngine::Address>("address"),
                           InstanceMethod<&NativeEngine::Pending>("pending"),
                           InstanceMethod<&NativeEngine::Extras>("extras"),
                       });
  }

  // new NativeEngine(impl, manualDrive, dispatch, { <the option keys of impl's table row> })
  NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    closedHandle_.closed = true;
    std::string impl = info[0].As<Napi::String>();
    manual_ = info[1].As<Napi::Boolean>();
    // Weak while nothing is pending (an idle engine can be collected), strong while ops or
    // listeners are live (their callbacks must fire even if the program dropped the engine).
    dispatch_ = Napi::Weak(info[2].As<Napi::Function>());
    env_ = env;
    core_.setIntoTargets(this);
    BackendOptions options = backendOptions(impl, manual_, info[3]);
    int err = 0;
    // No C++ exception leaves a constructor called from JavaScript: an allocation that fails
    // (a huge event array, a ring) becomes a JavaScript error.
    try {
      auto backend = makeBackend(impl, &core_, options, &err);
      if (!backend) {
        errnoError(env, err, impl.c_str()).ThrowAsJavaScriptException();
        return;
      }
      backend_ = backend.get();
      err = core_.init(std::move(backend));
    } catch (const std::bad_alloc&) {
      backend_ = nullptr;
      errnoError(env, -ENOMEM, impl.c_str()).ThrowAsJavaScriptException();
      return;
    }
    if (err < 0) {
      errnoError(env, err, "eventfd").ThrowAsJavaScriptException();
      return;
    }
    // The hot path (submit, drain, cancel): plain functions carrying the engine as their data,
    // which spares the wrapper lookup (napi_unwrap) an instance method pays on every call.
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("submit", Napi::Function::New(env, &NativeEngine::Fast<&NativeEngine::Submit>, "submit", this));
    self.Set("drain", Napi::Function::New(env, &NativeEngine::Fast<&NativeEngine::Drain>, "drain", this));
    self.Set("cancel", Napi::Function::New(env, &NativeEngine::Fast<&NativeEngine::Cancel>, "cancel", this));
    self.Set("take", Napi::Function::New(env, &NativeEngine::Fast<&NativeEngine::Take>, "take", this));
    self.Set("unread", Napi::Function::New(env, &NativeEngine::Fast<&NativeEngine::Unread>, "unread", this));
    if (manual_) {
      // Nothing of libuv's: the engine is torn down with its environment, synchronously.
      napi_add_env_cleanup_hook(env, &NativeEngine::EnvCleanup, this);
      cleanupHook_ = true;
    } else {
      asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "AsyncEngine");
      uv_loop_t* loop = nullptr;
      napi_get_uv_event_loop(env, &loop);
      uv_ = new UvHandles();
      uv_->owner = this;
      // The handles' close callbacks are code of this addon: when the environment ends (a
      // worker thread that exits, is terminated or calls process.exit()), it waits for them
      // before it unloads the addon. The hook is removed by the last close callback.
      napi_add_async_cleanup_hook(env, &NativeEngine::AsyncEnvCleanup, uv_, &uv_->hook);
      uv_poll_init(loop, &uv_->poll, core_.pollFd());
      uv_->poll.data = uv_;
      uv_poll_start(&uv_->poll, UV_READABLE, &NativeEngine::OnPoll);
      uv_unref(reinterpret_cast<uv_handle_t*>(&uv_->poll));  // refd_ starts false: updateRef() keeps them in step
      uv_timer_init(loop, &uv_->timer);
      uv_->timer.data = uv_;
      uv_unref(reinterpret_cast<uv_handle_t*>(&uv_->timer));
      uv_idle_init(loop, &uv_->idle);
      uv_->idle.data = uv_;
      uv_unref(reinterpret_cast<uv_handle_t*>(&uv_->idle));
      updateRef();
    }
  }

  ~NativeEngine() override { teardown(); }

  // IntoTargets: a readInto's typed array, checked each time bytes are copied into it (on
  // this thread, with no JavaScript running in between): still attached, still long enough.
  char* intoMemory(void* target, size_t len) override {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return nullptr;
    char* out = nullptr;
    napi_value view = nullptr;
    napi_value buffer = nullptr;
    napi_typedarray_type type;
    size_t length = 0;
    size_t offset = 0;
    void* data = nullptr;
    bool detached = true;
    if (napi_get_reference_value(env_, static_cast<napi_ref>(target), &view) == napi_ok && view &&
        napi_get_typedarray_info(env_, view, &type, &length, &data, &buffer, &offset) == napi_ok &&
        napi_is_detached_arraybuffer(env_, buffer, &detached) == napi_ok && !detached &&
        type == napi_uint8_array && data && length >= len) {
      out = static_cast<char*>(data);
    }
    napi_close_handle_scope(env_, scope);
    return out;
  }

  void intoRelease(void* target) override { napi_delete_reference(env_, static_cast<napi_ref>(target)); }

 private:
  // The libuv handles of `auto` drive live apart from the wrapper, so that they can be closed
  // (asynchronously) even when the wrapper is being garbage-collected.
  struct UvHandles {
    NativeEngine* owner = nullptr;  // null once the engine is torn down
    uv_poll_t poll;
    uv_timer_t timer;
    uv_idle_t idle;
    int open = 3;
    napi_async_cleanup_hook_handle hook = nullptr;
  };

  // The environment ends with a manual-drive engine alive: tear it down.
  static void EnvCleanup(void* arg) {
    auto* self = static_cast<NativeEngine*>(arg);
    self->cleanupHook_ = false;
    self->envGoing_ = true;
    self->teardown();
  }

  // The environment ends with an auto-drive engine's handles open (the engine alive, or torn
  // down with its close callbacks still to run): tear it down; the environment waits until the
  // last close callback removes the hook.
  static void AsyncEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    auto* u = static_cast<UvHandles*>(arg);
    if (u->owner) {
      u->owner->envGoing_ = true;
      u->owner->teardown();
    }
  }

  static void OnUvClose(uv_handle_t* h) {
    auto* u = static_cast<UvHandles*>(h->data);
    if (--u->open > 0) return;
    if (u->hook) napi_remove_async_cleanup_hook(u->hook);
    delete u;
  }

  // Closes everything without calling into JavaScript. Idempotent.
  void teardown() {
    if (torn_) return;
    torn_ = true;
    core_.shutdown();
    core_.ready().clear();
    if (cleanupHook_) {
      napi_remove_env_cleanup_hook(env_, &NativeEngine::EnvCleanup, this);
      cleanupHook_ = false;
    }
    if (uv_) {
      uv_->owner = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&uv_->poll), &NativeEngine::OnUvClose);
      uv_close(reinterpret_cast<uv_handle_t*>(&uv_->timer), &NativeEngine::OnUvClose);
      uv_close(reinterpret_cast<uv_handle_t*>(&uv_->idle), &NativeEngine::OnUvClose);
      uv_ = nullptr;
    }
    core_.release();
    if (refd_) {
      refd_ = false;
      Unref();
      dispatch_.Unref();
    }
  }

  // False once the environment cannot run JavaScript any more (a worker being terminated or
  // exiting): the libuv callbacks then leave everything to the environment's cleanup.
  // napi_coerce_to_bool is a call that checks exactly that before it does anything.
  bool jsCanRun() {
    if (envGoing_) return false;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return false;
    napi_value undefined = nullptr;
    napi_value result = nullptr;
    bool ok = napi_get_undefined(env_, &undefined) == napi_ok &&
              napi_coerce_to_bool(env_, undefined, &result) == napi_ok;
    napi_close_handle_scope(env_, scope);
    if (!ok) envGoing_ = true;
    return ok;
  }

  static void OnPoll(uv_poll_t* p, int status, int events) {
    auto* u = static_cast<UvHandles*>(p->data);
    if (!u->owner || !u->owner->jsCanRun()) return;
    NativeEngine* self = u->owner;
    self->core_.poll(0);
    self->deliverFromLoop();
  }

  static void OnTimer(uv_timer_t* t) {
    auto* u = static_cast<UvHandles*>(t->data);
    if (!u->owner || !u->owner->jsCanRun()) return;
    NativeEngine* self = u->owner;
    self->armedDeadline_ = 0;
    self->core_.expireTimers();
    self->deliverFromLoop();
  }

  static void OnIdle(uv_idle_t* i) {
    auto* u = static_cast<UvHandles*>(i->data);
    uv_idle_stop(i);
    if (!u->owner || !u->owner->jsCanRun()) return;
    u->owner->idleActive_ = false;
    u->owner->core_.flushBackend();  // submissions made outside a batch (a timer, a promise)
    u->owner->core_.expireTimers();  // due deadlines go out with (and before) this batch
    u->owner->deliverFromLoop();
  }

  // Called from a libuv callback: deliver in rounds, each its own callback scope, so that
  // promise jobs and nextTicks run between rounds as they do after any Node callback.
  void deliverFromLoop() {
    Napi::Env env = Env();
    // A ring may finish what the batch submitted during the submission itself (a send to a
    // socket with room): those completions are delivered now, not after another wake-up.
    for (int pass = 0; pass < 4; pass++) {
      deliverRounds(env);
      if (envGoing_) return;  // JavaScript cannot run: the environment's cleanup tears down
      core_.flushBackend();  // what the batch's callbacks submitted goes out in one system call
      if (torn_ || !core_.completionsWaiting()) break;
      core_.poll(0);
      if (core_.ready().empty()) break;
    }
    afterCall();
  }

  void deliverRounds(Napi::Env env) {
    for (int round = 0; round < 16 && !core_.ready().empty() && !torn_ && !envGoing_; round++) {
      Napi::HandleScope scope(env);
      Batch b = takeBatch(env);
      napi_value result;
      napi_value argv[4] = {b.count, b.idsResults, b.payloads, b.arena};
      napi_status st = napi_make_callback(env, asyncContext_ ? static_cast<napi_async_context>(*asyncContext_) : nullptr,
                                          Value(), dispatch_.Value(), 4, argv, &result);
      if (st != napi_ok && !reportFailedCall(env)) return;
    }
  }

  // A call into JavaScript failed. An exception the program threw goes to 'uncaughtException'
  // and delivery goes on. No exception to show means JavaScript cannot run any more (the worker
  // thread is being terminated, or exits): the engine makes no more N-API calls that could need
  // it (no Napi::Error is built: that would abort the process) and returns false.
  bool reportFailedCall(napi_env env) {
    bool pending = false;
    napi_value error = nullptr;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &error) == napi_ok && error != nullptr) {
      napi_valuetype type = napi_undefined;
      if (napi_typeof(env, error, &type) == napi_ok && type != napi_undefined) {
        if (napi_fatal_exception(env, error) == napi_ok) return true;
      }
    }
    envGoing_ = true;
    return false;
  }

  // One batch for the JS dispatcher. `idsResults` (a Float64Array reused from batch to batch)
  // holds five numbers per finished op: id, result, the offset and length of its bytes in
  // `arena` (a Buffer also reused), or -1 when its payload is in `payloads` (an array with
  // holes, made only when some op needs it), and the bytes a socket read left buffered with no
  // read queued behind it (Completion::rest), which JavaScript then takes in bulk. Small
  // payloads thus cost no Buffer each.
  struct Batch {
    napi_value count;
    napi_value idsResults;
    napi_value payloads;
    napi_value arena;
  };

  static constexpr size_t kStride = 5;              // numbers per op in idsResults
  static constexpr size_t kArenaMax = 16 * 1024;  // larger payloads travel as their own Buffer

  Batch takeBatch(Napi::Env env) {
    batch_.clear();
    batch_.swap(core_.ready());  // the core keeps filling the other vector, capacity and all
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
    for (const Completion& c : batch_) {
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
      } else if (c.kind != PayloadKind::kNone || (c.result < 0 && c.syscall != Syscall::kNone) ||
                 c.result == kErrResolve) {
        if (!payloads) payloads = Napi::Array::New(env, n);
        Napi::Value(env, payloads).As<Napi::Array>().Set(static_cast<uint32_t>(i), payload(env, c));
      }
    }
    core_.delivered(settled);
    return Batch{Napi::Number::New(env, static_cast<double>(n)), f64Ref_.Value(),
                 payloads ? payloads : env.Undefined(), arenaRef_.Value()};
  }

  static bool inArena(const Completion& c) {
    return (c.kind == PayloadKind::kBytes || c.kind == PayloadKind::kString) && c.data.size() <= kArenaMax;
  }

  // drain(): the next batch for a dispatcher that keeps going in the same callback (ops its
  // callbacks finished at once). Returns 0 when nothing is ready; the count when the batch is
  // in the same Float64Array and arena as before with no separate payloads; minus the count
  // when the dispatcher must fetch those with extras() (new arrays, or payloads). Building no
  // array per call keeps a round of this loop cheap.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (torn_ || core_.ready().empty()) return Napi::Number::New(env, 0);
    double* f64Before = f64_;
    char* arenaBefore = arena_;
    Batch b = takeBatch(env);
    double n = Napi::Value(env, b.count).As<Napi::Number>().DoubleValue();
    bool plain = f64_ == f64Before && arena_ == arenaBefore && Napi::Value(env, b.payloads).IsUndefined();
    if (!plain) {
      extras_ = Napi::Persistent(Napi::Array::New(env, 3));
      extras_.Value().Set(0u, b.idsResults);
      extras_.Value().Set(1u, b.payloads);
      extras_.Value().Set(2u, b.arena);
    }
    return Napi::Number::New(env, plain ? n : -n);
  }

  // extras(): [idsResults, payloads, arena] of the batch drain() last returned with a minus.
  Napi::Value Extras(const Napi::CallbackInfo& info) {
    if (extras_.IsEmpty()) return info.Env().Undefined();
    Napi::Value v = extras_.Value();
    extras_.Reset();
    return v;
  }

  Napi::Value payload(Napi::Env env, Completion& c) {
    if (c.result < 0 && c.result != kProgress && c.kind != PayloadKind::kBytes) {
      if (c.result == kErrResolve) {
        auto a = Napi::Array::New(env, 2);
        a.Set(0u, Napi::Number::New(env, c.fd));
        a.Set(1u, Napi::Number::New(env, static_cast<double>(c.handle)));
        return a;
      }
      const char* sc = syscallName(c.syscall);
      Napi::Value name = sc ? Napi::String::New(env, sc) : env.Undefined();
      if (c.kind != PayloadKind::kWritten) return name;
      auto a = Napi::Array::New(env, 2);  // a failed write: [syscall, bytes written]
      a.Set(0u, name);
      a.Set(1u, Napi::Number::New(env, static_cast<double>(c.handle)));
      return a;
    }
    switch (c.kind) {
      case PayloadKind::kBytes:
        return Napi::Buffer<char>::Copy(env, c.data.data(), c.data.size());
      case PayloadKind::kString:
        return Napi::String::New(env, c.data.data(), c.data.size());
      case PayloadKind::kSocket: {
        auto a = Napi::Array::New(env, 2);
        a.Set(0u, Napi::Number::New(env, static_cast<double>(c.handle)));
        a.Set(1u, Napi::Number::New(env, c.fd));
        return a;
      }
      case PayloadKind::kLines:
        if (c.flag) {  // lines of an op with a non-UTF-8 encoding: bytes, decoded in JS
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
        a.Set(1u, Napi::Boolean::New(env, c.flag));
        a.Set(2u, Napi::Boolean::New(env, c.flag2));
        return a;
      }
      default:
        return env.Undefined();
    }
  }

  // After anything that may have finished ops or moved a deadline: schedule delivery, re-arm
  // the deadline timer, and keep the process alive only while there is something to wait for.
  void afterCall() {
    if (!uv_ || torn_) return;
    if ((!core_.ready().empty() || core_.backendHasUnsubmitted()) && !idleActive_) {
      idleActive_ = true;
      uv_idle_start(&uv_->idle, &NativeEngine::OnIdle);
    }
    int64_t d = core_.nextDeadline();
    if (d != armedDeadline_) {
      armedDeadline_ = d;
      if (d == 0) {
        uv_timer_stop(&uv_->timer);
      } else {
        int64_t ms = core_.msToNextDeadline();
        uv_timer_start(&uv_->timer, &NativeEngine::OnTimer, static_cast<uint64_t>(ms < 0 ? 0 : ms), 0);
      }
    }
    updateRef();
  }

  void updateRef() {
    bool want = core_.liveOps() > 0 || core_.pendingDelivery() > 0 || core_.listeners() > 0;
    if (want == refd_) return;
    refd_ = want;
    if (want) {
      Ref();
      dispatch_.Ref();
      if (uv_) uv_ref(reinterpret_cast<uv_handle_t*>(&uv_->poll));
    } else {
      Unref();
      dispatch_.Unref();
      if (uv_) uv_unref(reinterpret_cast<uv_handle_t*>(&uv_->poll));
    }
  }

  bool checkOpen(Napi::Env env) {
    if (torn_) {
      Napi::Error::New(env, "the engine is shut down").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  // listen(host|path, port (-1 for a path), backlog, reusePort) -> [handle, fd]
  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!checkOpen(env)) return env.Undefined();
    std::string host = info[0].As<Napi::String>();
    int port = info[1].As<Napi::Number>().Int32Value();
    int backlog = info[2].As<Napi::Number>().Int32Value();
    bool reusePort = info[3].As<Napi::Boolean>();
    sockaddr_storage ss;
    socklen_t len;
    if (!parseAddress(host, port, &ss, &len)) {
      Napi::TypeError::New(env, "not a numeric address or a valid path: " + host).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t id = 0;
    int64_t fd = core_.listen(reinterpret_cast<sockaddr*>(&ss), len, backlog, reusePort, &id);
    if (fd < 0) {
      errnoError(env, fd, "bind").ThrowAsJavaScriptException();  // bind(2) is what refuses an address
      return env.Undefined();
    }
    afterCall();
    auto a = Napi::Array::New(env, 2);
    a.Set(0u, Napi::Number::New(env, static_cast<double>(id)));
    a.Set(1u, Napi::Number::New(env, static_cast<double>(fd)));
    return a;
  }

  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!checkOpen(env)) return env.Undefined();
    int fd = info[0].As<Napi::Number>().Int32Value();
    uint64_t id = 0;
    int64_t rc = core_.adopt(fd, &id);
    if (rc < 0) {
      errnoError(env, rc, "adopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    afterCall();
    return Napi::Number::New(env, static_cast<double>(id));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (torn_) return info.Env().Undefined();
    core_.close(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    afterCall();
    return info.Env().Undefined();
  }

  // Builds an Op from [kind, id, handle, timeoutMs, a, b, flags] (a, b depend on kind).
  Op* makeOp(Napi::Env env, const Napi::Value* v) {
    Op* op = core_.newOp();
    op->kind = static_cast<OpKind>(v[0].As<Napi::Number>().Int32Value());
    op->id = v[1].As<Napi::Number>().Int64Value();
    double handle = v[2].As<Napi::Number>().DoubleValue();
    if (handle > 0) {
      op->h = core_.handle(static_cast<uint64_t>(handle));
      if (!op->h) op->h = &closedHandle_;
    }
    op->timeoutMs = v[3].As<Napi::Number>().DoubleValue();
    const Napi::Value& a = v[4];
    const Napi::Value& b = v[5];
    auto position = [](const Napi::Value& x) -> int64_t {
      return x.IsNumber() ? static_cast<int64_t>(x.As<Napi::Number>().DoubleValue()) : -1;
    };
    auto maxBytes = [](const Napi::Value& x) {
      double d = x.As<Napi::Number>().DoubleValue();
      return d < 0 || d >= 9.0e15 ? SIZE_MAX : static_cast<size_t>(d);
    };
    switch (op->kind) {
      case OpKind::kReadUntil:
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
        op->asString = b.IsBoolean() && b.As<Napi::Boolean>();
        break;
      case OpKind::kReadRegex:
        op->maxBytes = maxBytes(a);
        break;
      case OpKind::kReadPrefixed:
        // a: the header's delimiter (bytes; undefined: a line), or the whole record's length
        // when JavaScript already knows it; b: the header's maxBytes.
        if (a.IsBuffer()) {
          auto buf = a.As<Napi::Buffer<char>>();
          op->pattern.assign(buf.Data(), buf.Length());
        } else if (a.IsNumber()) {
          op->n = static_cast<size_t>(a.As<Napi::Number>().DoubleValue());
        }
        op->maxBytes = maxBytes(b);
        break;
      case OpKind::kReadAll:
        op->maxBytes = maxBytes(a);
        op->position = position(b);
        break;
      case OpKind::kReadChunk:
      case OpKind::kReadExactly:
        op->n = static_cast<size_t>(a.As<Napi::Number>().DoubleValue());
        op->position = position(b);
        break;
      case OpKind::kReadInto: {
        // A reference keeps the typed array (and its memory) alive until the op is freed; the
        // memory is looked up again whenever bytes are copied there (intoMemory).
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
        op->host = a.As<Napi::String>().Utf8Value();
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
          op->host = a.As<Napi::String>().Utf8Value();
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
      case OpKind::kSleep:
        break;
      case OpKind::kResolve:
        op->host = a.As<Napi::String>().Utf8Value();
        op->service = b.IsString() ? b.As<Napi::String>().Utf8Value() : std::string();
        break;
      default:
        break;
    }
    return op;
  }

  template <Napi::Value (NativeEngine::*Method)(const Napi::CallbackInfo&)>
  static Napi::Value Fast(const Napi::CallbackInfo& info) {
    return (static_cast<NativeEngine*>(info.Data())->*Method)(info);
  }

  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!checkOpen(env)) return env.Undefined();
    Napi::Value v[6] = {info[0], info[1], info[2], info[3], info[4], info[5]};
    Op* op = makeOp(env, v);
    if (!op) return env.Undefined();
    if (env.IsExceptionPending()) {  // an argument of the wrong type: queue nothing
      if (op->into) intoRelease(op->into);
      delete op;
      return env.Undefined();
    }
    core_.submit(op);
    afterCall();
    return env.Undefined();
  }

  Napi::Value Chain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!checkOpen(env)) return env.Undefined();
    auto stages = info[0].As<Napi::Array>();
    std::vector<Op*> ops;
    for (uint32_t i = 0; i < stages.Length(); i++) {
      auto s = stages.Get(i).As<Napi::Array>();
      Napi::Value v[6] = {s.Get(0u), s.Get(1u), s.Get(2u), s.Get(3u), s.Get(4u), s.Get(5u)};
      Op* op = makeOp(env, v);
      if (!op) {
        for (Op* o : ops) delete o;
        return env.Undefined();
      }
      if (i > 0 && op->h == &closedHandle_) op->h = nullptr;
      ops.push_back(op);
    }
    core_.submitChain(std::move(ops));
    afterCall();
    return env.Undefined();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    if (torn_) return Napi::Boolean::New(info.Env(), false);
    bool won = core_.cancel(info[0].As<Napi::Number>().Int64Value());
    afterCall();
    return Napi::Boolean::New(info.Env(), won);
  }

  // take(handle, dest): moves a socket's buffered bytes into the Buffer `dest` (as many as fit)
  // for JavaScript to frame; returns how many. 0 while a read is queued on the socket.
  Napi::Value Take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || !info[1].IsBuffer()) return Napi::Number::New(env, 0);
    auto dest = info[1].As<Napi::Buffer<char>>();
    return Napi::Number::New(env, static_cast<double>(core_.take(h, dest.Data(), dest.Length())));
  }

  // unread(handle, bytes): puts bytes JavaScript took and did not consume back in front of the
  // socket's buffer, before it submits a read that needs more. False when the socket is gone.
  Napi::Value Unread(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || !info[1].IsTypedArray()) return Napi::Boolean::New(env, false);
    auto bytes = info[1].As<Napi::Uint8Array>();
    return Napi::Boolean::New(env, core_.unread(h, reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength()));
  }

  Napi::Value RegexVerdict(const Napi::CallbackInfo& info) {
    if (torn_) return Napi::Boolean::New(info.Env(), false);
    bool ok = core_.regexVerdict(info[0].As<Napi::Number>().Int64Value(), info[1].As<Napi::Number>().Int64Value());
    afterCall();
    return Napi::Boolean::New(info.Env(), ok);
  }

  // runOnce(timeoutMs): waits for work (bounded by deadlines), then dispatches one batch and
  // whatever the batch's callbacks finish at once. Returns the number of ops settled.
  Napi::Value RunOnce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (torn_) return Napi::Number::New(env, 0);
    int timeout = info[0].As<Napi::Number>().Int32Value();
    core_.poll(core_.ready().empty() ? timeout : 0);
    size_t before = core_.stats().completions;
    for (int round = 0; round < 16 && !core_.ready().empty() && !torn_; round++) {
      Batch b = takeBatch(env);
      napi_value argv[4] = {b.count, b.idsResults, b.payloads, b.arena};
      napi_value result;
      // A failed call leaves its exception pending for runOnce's caller (or JavaScript cannot
      // run any more): no Napi::Error is built here.
      if (napi_call_function(env, Value(), dispatch_.Value(), 4, argv, &result) != napi_ok) break;
    }
    size_t n = core_.stats().completions - before;
    afterCall();
    return Napi::Number::New(env, static_cast<double>(n));
  }

  // shutdown(): fails every op with ECANCELED, closes every handle, and delivers those
  // failures on the next turn of the loop; the JS side resolves once they are in.
  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (torn_) return env.Undefined();
    core_.shutdown();
    // The cancellations are delivered later (never inside the shutdown call), in arrays of
    // their own: a shutdown() made from a callback must not overwrite the reused arrays that
    // hold the rest of the batch being delivered.
    f64Ref_.Reset();
    f64_ = nullptr;
    f64Cap_ = 0;
    arenaRef_.Reset();
    arena_ = nullptr;
    arenaCap_ = 0;
    Batch b = takeBatch(env);
    Napi::Array out = Napi::Array::New(env, 4);
    out.Set(0u, b.count);
    out.Set(1u, b.idsResults);
    out.Set(2u, b.payloads);
    out.Set(3u, b.arena);
    teardown();
    return out;
  }

  Napi::Value StatsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Stats s = core_.stats();
    auto o = Napi::Object::New(env);
    o.Set("opsInFlight", Napi::Number::New(env, static_cast<double>(core_.liveOps() + core_.pendingDelivery())));
    o.Set("completions", Napi::Number::New(env, static_cast<double>(s.completions)));
    o.Set("batches", Napi::Number::New(env, static_cast<double>(s.batches)));
    o.Set("syscalls", Napi::Number::New(env, static_cast<double>(s.coreSyscalls)));
    o.Set("bytesRead", Napi::Number::New(env, static_cast<double>(s.bytesRead)));
    o.Set("files", Napi::Number::New(env, static_cast<double>(core_.files())));
    o.Set("fileFastPath", Napi::Number::New(env, static_cast<double>(s.fileFastPath)));
    o.Set("fileFallbacks", Napi::Number::New(env, static_cast<double>(s.fileFallbacks)));
    o.Set("fileOps", Napi::Number::New(env, static_cast<double>(s.fileOps)));
    o.Set("bytesWritten", Napi::Number::New(env, static_cast<double>(s.bytesWritten)));
    o.Set("sockets", Napi::Number::New(env, static_cast<double>(core_.sockets())));
    o.Set("listeners", Napi::Number::New(env, static_cast<double>(core_.listeners())));
    // The backend's own gauges (a thread pool's queue depth, ...); the core frees it at teardown.
    if (backend_ && !torn_) {
      std::vector<std::pair<const char*, double>> gauges;
      backend_->gauges(&gauges);
      for (auto& [name, value] : gauges) o.Set(name, Napi::Number::New(env, value));
    }
    return o;
  }

  Napi::Value Buffered(const Napi::CallbackInfo& info) {
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return Napi::Number::New(info.Env(), h ? static_cast<double>(core_.bufferedBytes(h)) : 0);
  }

  // address(handle, peer) -> [address, port, family] | path | undefined
  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h) return env.Undefined();
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int rc = info[1].As<Napi::Boolean>() ? ::getpeername(h->fd, reinterpret_cast<sockaddr*>(&ss), &len)
                                         : ::getsockname(h->fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (rc < 0) return env.Undefined();
    return describe(env, ss, len);
  }

  // True while an op is live or a completion awaits delivery (run() waits on it).
  Napi::Value Pending(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !torn_ && (core_.liveOps() > 0 || !core_.ready().empty()));
  }

  EngineCore core_;
  Handle closedHandle_{};  // stands for a handle id that is no longer open
  Napi::FunctionReference dispatch_;
  std::vector<Completion> batch_;
  Napi::Reference<Napi::Float64Array> f64Ref_;
  double* f64_ = nullptr;
  size_t f64Cap_ = 0;
  Napi::Reference<Napi::Buffer<char>> arenaRef_;
  Napi::Reference<Napi::Array> extras_;
  char* arena_ = nullptr;
  size_t arenaCap_ = 0;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
  napi_env env_ = nullptr;
  UvHandles* uv_ = nullptr;
  bool manual_ = false;
  bool refd_ = false;
  bool idleActive_ = false;
  bool torn_ = false;
  bool envGoing_ = false;  // the environment is ending: no call into JavaScript any more
  bool cleanupHook_ = false;
  int64_t armedDeadline_ = 0;
  Backend* backend_ = nullptr;  // owned by core_, valid until teardown()
};

namespace {

// The backend table: [{ name, options: [key, ...] }, ...], in the table's order.
Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& table = backendTable();
  Napi::Array out = Napi::Array::New(env, table.size());
  for (size_t i = 0; i < table.size(); i++) {
    Napi::Object row = Napi::Object::New(env);
    row.Set("name", Napi::String::New(env, table[i].name));
    Napi::Array keys = Napi::Array::New(env, table[i].optionKeys.size());
    for (size_t k = 0; k < table[i].optionKeys.size(); k++) {
      keys.Set(static_cast<uint32_t>(k), Napi::String::New(env, table[i].optionKeys[k]));
    }
    row.Set("options", keys);
    out.Set(static_cast<uint32_t>(i), row);
  }
  return out;
}

// "" when the implementation can run here, else the reason it cannot.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, probeBackend(info[0].As<Napi::String>()));
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeEngine", NativeEngine::Init(env));
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("backends", Napi::Function::New(env, Backends));
  return exports;
}

}  // namespace async_engine

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return async_engine::InitModule(env, exports);
}

NODE_API_MODULE(async_engine, InitAddon)
