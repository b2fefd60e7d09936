// N-API bindings: the NativeEngine class that the TypeScript engine drives, and the module's
// exports. An op's argument layout and the batch format are the codec's (codec.h), the Node
// event-loop integration of `auto` drive is uv_drive.h's, socket addresses are address.h's.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <napi.h>

#include "address.h"
#include "backends/factory.h"
#include "codec.h"
#include "core/engine_core.h"
#include "uv_drive.h"

namespace async_engine {

namespace {

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

class NativeEngine : public Napi::ObjectWrap<NativeEngine>, public IntoTargets, public UvDriveClient {
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
                           InstanceMethod<&NativeEngine::SetSocketOptions>("setSocketOptions"),
                           InstanceMethod<&NativeEngine::GetSocketOptions>("socketOptions"),
                           InstanceMethod<&NativeEngine::DeferAccept>("deferAccept"),
                           InstanceMethod<&NativeEngine::TlsInfo>("tlsInfo"),
                           InstanceMethod<&NativeEngine::TlsSessionInfo>("tlsSessionInfo"),
                           InstanceMethod<&NativeEngine::Pending>("pending"),
                           InstanceMethod<&NativeEngine::Extras>("extras"),
                           InstanceMethod<&NativeEngine::SetTimeouts>("setTimeouts"),
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
    const char* syscall = impl.c_str();  // an implementation this build does not know
    // No C++ exception leaves a constructor called from JavaScript: an allocation that fails
    // (a huge event array, a ring) becomes a JavaScript error.
    try {
      auto backend = makeBackend(impl, &core_, options, &err, &syscall);
      if (!backend) {
        errnoError(env, err, syscall).ThrowAsJavaScriptException();
        return;
      }
      backend_ = backend.get();
      err = core_.init(std::move(backend), &syscall);
    } catch (const std::bad_alloc&) {
      backend_ = nullptr;
      errnoError(env, -ENOMEM, "malloc").ThrowAsJavaScriptException();
      return;
    }
    if (err < 0) {
      errnoError(env, err, syscall).ThrowAsJavaScriptException();
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
    self.Set("counter", Napi::Function::New(env, &NativeEngine::Fast<&NativeEngine::Counter>, "counter", this));
    if (manual_) {
      // Nothing of libuv's: the engine is torn down with its environment, synchronously.
      napi_add_env_cleanup_hook(env, &NativeEngine::EnvCleanup, this);
      cleanupHook_ = true;
    } else {
      asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "AsyncEngine");
      uv_ = UvDrive::start(env, core_.pollFd(), this);
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
  // The environment ends with a manual-drive engine alive: tear it down.
  static void EnvCleanup(void* arg) {
    auto* self = static_cast<NativeEngine*>(arg);
    self->cleanupHook_ = false;
    self->envGoing_ = true;
    self->teardown();
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
      uv_->close();
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

  // UvDriveClient: the loop's callbacks in `auto` drive.
  bool uvCanRun() override { return jsCanRun(); }

  void uvReady() override {
    core_.poll(0);
    deliverFromLoop();
  }

  void uvDeadline() override {
    core_.expireTimers();
    deliverFromLoop();
  }

  void uvIdle() override {
    core_.flushBackend();  // submissions made outside a batch (a timer, a promise)
    core_.expireTimers();  // due deadlines go out with (and before) this batch
    deliverFromLoop();
  }

  void uvEnvEnding() override {
    envGoing_ = true;
    teardown();
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
      Batch b = batches_.take(env, core_);
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

  // drain(): the next batch for a dispatcher that keeps going in the same callback (ops its
  // callbacks finished at once). Returns 0 when nothing is ready; the count when the batch is
  // in the same Float64Array and arena as before with no separate payloads; minus the count
  // when the dispatcher must fetch those with extras() (new arrays, or payloads). Building no
  // array per call keeps a round of this loop cheap.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (torn_ || core_.ready().empty()) return Napi::Number::New(env, 0);
    Batch b = batches_.take(env, core_);
    double n = Napi::Value(env, b.count).As<Napi::Number>().DoubleValue();
    bool plain = b.plain;
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

  // After anything that may have finished ops or moved a deadline: schedule delivery, re-arm
  // the deadline timer, and keep the process alive only while there is something to wait for.
  void afterCall() {
    if (!uv_ || torn_) return;
    if (!core_.ready().empty() || core_.backendHasUnsubmitted()) uv_->scheduleIdle();
    int64_t d = core_.nextDeadline();
    if (d != uv_->armedDeadline()) uv_->armDeadline(d, core_.msToNextDeadline());
    updateRef();
  }

  void updateRef() {
    bool want = core_.liveOps() > 0 || core_.pendingDelivery() > 0 || core_.listeners() > 0;
    if (want == refd_) return;
    refd_ = want;
    if (want) {
      Ref();
      dispatch_.Ref();
    } else {
      Unref();
      dispatch_.Unref();
    }
    if (uv_) uv_->keepAlive(want);
  }

  bool checkOpen(Napi::Env env) {
    if (torn_) {
      Napi::Error::New(env, "the engine is shut down").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  // listen(host|path, port (-1 for a path), backlog, reusePort, ipv6Only, deferAccept seconds
  // (0: off)) -> [handle, fd]
  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!checkOpen(env)) return env.Undefined();
    std::string host = info[0].As<Napi::String>();
    int port = info[1].As<Napi::Number>().Int32Value();
    int backlog = info[2].As<Napi::Number>().Int32Value();
    bool reusePort = info[3].As<Napi::Boolean>();
    bool ipv6Only = info[4].As<Napi::Boolean>();
    int deferAccept = info[5].IsNumber() ? info[5].As<Napi::Number>().Int32Value() : 0;
    sockaddr_storage ss;
    socklen_t len;
    if (!parseAddress(host, port, &ss, &len)) {
      Napi::TypeError::New(env, "not a numeric address or a valid path: " + host).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t id = 0;
    const char* syscall = "listen";
    int64_t fd = core_.listen(reinterpret_cast<sockaddr*>(&ss), len, backlog, reusePort, ipv6Only, deferAccept, &id,
                              &syscall);
    if (fd < 0) {
      errnoError(env, fd, syscall).ThrowAsJavaScriptException();
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

  template <Napi::Value (NativeEngine::*Method)(const Napi::CallbackInfo&)>
  static Napi::Value Fast(const Napi::CallbackInfo& info) {
    return (static_cast<NativeEngine*>(info.Data())->*Method)(info);
  }

  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!checkOpen(env)) return env.Undefined();
    Napi::Value v[6] = {info[0], info[1], info[2], info[3], info[4], info[5]};
    Op* op = decodeOp(env, core_, &closedHandle_, v);
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
      Op* op = decodeOp(env, core_, &closedHandle_, v);
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
      Batch b = batches_.take(env, core_);
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
    batches_.forget();
    Batch b = batches_.take(env, core_);
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
    auto filtered = Napi::Object::New(env);
    filtered.Set("mismatch", Napi::Number::New(env, static_cast<double>(s.filteredMismatch)));
    filtered.Set("timeout", Napi::Number::New(env, static_cast<double>(s.filteredTimeout)));
    filtered.Set("tooLong", Napi::Number::New(env, static_cast<double>(s.filteredTooLong)));
    o.Set("filteredConnections", filtered);
    o.Set("lingeringConnections", Napi::Number::New(env, static_cast<double>(core_.lingering())));
    o.Set("mismatchReplies", Napi::Number::New(env, static_cast<double>(s.mismatchReplies)));
    o.Set("bytesWritten", Napi::Number::New(env, static_cast<double>(s.bytesWritten)));
    o.Set("sockets", Napi::Number::New(env, static_cast<double>(core_.sockets())));
    o.Set("listeners", Napi::Number::New(env, static_cast<double>(core_.listeners())));
    o.Set("tlsContexts", Napi::Number::New(env, static_cast<double>(core_.tlsContexts().live())));
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

  // counter(handle, which) -> a socket's counter (0 bytesRead, 1 bytesWritten, 2
  // pendingWriteBytes), or -1 when the handle is gone. A plain function: a getter reads one.
  Napi::Value Counter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h) return Napi::Number::New(env, -1);
    int which = info[1].As<Napi::Number>().Int32Value();
    return Napi::Number::New(env, static_cast<double>(core_.socketCounter(h, which)));
  }

  // setTimeouts(handle, idleMs, writeMs): a socket's idle and write timeouts (0: off).
  Napi::Value SetTimeouts(const Napi::CallbackInfo& info) {
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (h) {
      core_.setTimeouts(h, info[1].As<Napi::Number>().DoubleValue(), info[2].As<Napi::Number>().DoubleValue());
      afterCall();  // a timer armed or disarmed: the deadline the loop waits for moved
    }
    return info.Env().Undefined();
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

  // setSocketOptions(handle, noDelay, keepAlive, keepIdleSeconds, receiveBuffer, sendBuffer):
  // -1 leaves an option alone (JavaScript checked the ranges). Throws errno and syscall.
  Napi::Value SetSocketOptions(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || h->kind == HandleKind::kFile) {
      errnoError(env, -EBADF, "setsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    SocketOptions o;
    o.noDelay = info[1].As<Napi::Number>().Int32Value();
    o.keepAlive = info[2].As<Napi::Number>().Int32Value();
    o.keepIdle = info[3].As<Napi::Number>().Int32Value();
    o.receiveBuffer = info[4].As<Napi::Number>().Int32Value();
    o.sendBuffer = info[5].As<Napi::Number>().Int32Value();
    int rc = core_.setSocketOptions(h, o);
    if (rc < 0) errnoError(env, rc, "setsockopt").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // socketOptions(handle) -> [noDelay, keepAlive, keepIdleSeconds, receiveBuffer, sendBuffer]
  Napi::Value GetSocketOptions(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || h->kind != HandleKind::kSocket) {
      errnoError(env, -EBADF, "getsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    SocketOptions o;
    int rc = core_.socketOptions(h, &o);
    if (rc < 0) {
      errnoError(env, rc, "getsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto a = Napi::Array::New(env, 5);
    a.Set(0u, Napi::Number::New(env, o.noDelay));
    a.Set(1u, Napi::Number::New(env, o.keepAlive));
    a.Set(2u, Napi::Number::New(env, o.keepIdle));
    a.Set(3u, Napi::Number::New(env, o.receiveBuffer));
    a.Set(4u, Napi::Number::New(env, o.sendBuffer));
    return a;
  }

  // deferAccept(listener handle) -> TCP_DEFER_ACCEPT as the kernel reports it, in seconds (0: off)
  Napi::Value DeferAccept(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || h->kind != HandleKind::kListener) {
      errnoError(env, -EBADF, "getsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int v = 0;
    socklen_t len = sizeof v;
    if (::getsockopt(h->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, &len) < 0) {
      if (errno == EOPNOTSUPP || errno == ENOPROTOOPT) return Napi::Number::New(env, 0);  // a Unix listener
      errnoError(env, -errno, "getsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, v);
  }

  // tlsInfo(handle) -> [protocol version, cipher (OpenSSL's name), its IANA name, the cipher's
  // protocol, the peer's certificate as DER or undefined, the ALPN protocol or false], or
  // undefined: no TLS established.
  Napi::Value TlsInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || !h->tls || !h->tls->established()) return env.Undefined();
    SSL* ssl = h->tls->ssl();
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
    auto a = Napi::Array::New(env, 6);
    a.Set(0u, Napi::String::New(env, SSL_get_version(ssl)));
    a.Set(1u, Napi::String::New(env, cipher ? SSL_CIPHER_get_name(cipher) : ""));
    a.Set(2u, Napi::String::New(env, cipher ? SSL_CIPHER_standard_name(cipher) : ""));
    a.Set(3u, Napi::String::New(env, cipher ? SSL_CIPHER_get_version(cipher) : ""));
    X509* peer = SSL_get0_peer_certificate(ssl);
    unsigned char* der = nullptr;
    int len = peer ? i2d_X509(peer, &der) : -1;
    if (len > 0) {
      a.Set(4u, Napi::Buffer<char>::Copy(env, reinterpret_cast<char*>(der), static_cast<size_t>(len)));
      OPENSSL_free(der);
    }
    std::string alpn = h->tls->alpnProtocol();
    a.Set(5u, alpn.empty() ? Napi::Value(Napi::Boolean::New(env, false)) : Napi::String::New(env, alpn));
    return a;
  }

  // tlsSessionInfo(handle, withSession) -> [the SNI name (server: what the client asked for) or
  // undefined, whether the session was resumed, the latest resumable session as DER or
  // undefined (only when withSession)], or undefined: no TLS established.
  Napi::Value TlsSessionInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Handle* h = torn_ ? nullptr : core_.handle(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    if (!h || !h->tls || !h->tls->established()) return env.Undefined();
    auto a = Napi::Array::New(env, 3);
    std::string name = h->tls->servername();
    if (!name.empty()) a.Set(0u, Napi::String::New(env, name));
    a.Set(1u, Napi::Boolean::New(env, h->tls->sessionReused()));
    if (info[1].ToBoolean()) {
      std::string der = h->tls->sessionDer();
      if (!der.empty()) a.Set(2u, Napi::Buffer<char>::Copy(env, der.data(), der.size()));
    }
    return a;
  }

  // True while an op is live or a completion awaits delivery (run() waits on it).
  Napi::Value Pending(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !torn_ && (core_.liveOps() > 0 || !core_.ready().empty()));
  }

  EngineCore core_;
  Handle closedHandle_{};  // stands for a handle id that is no longer open
  Napi::FunctionReference dispatch_;
  BatchEncoder batches_;
  Napi::Reference<Napi::Array> extras_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
  napi_env env_ = nullptr;
  UvDrive* uv_ = nullptr;  // `auto` drive
  bool manual_ = false;
  bool refd_ = false;
  bool torn_ = false;
  bool envGoing_ = false;  // the environment is ending: no call into JavaScript any more
  bool cleanupHook_ = false;
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
  exports.Set("opKinds", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return opKinds(info.Env()); }));
  return exports;
}

}  // namespace async_engine

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return async_engine::InitModule(env, exports);
}

NODE_API_MODULE(async_engine, InitAddon)
