// `auto` drive on the Node event loop (see uv_drive.h).
#include "uv_drive.h"

namespace async_engine {

UvDrive* UvDrive::start(napi_env env, int pollFd, UvDriveClient* client) {
  auto* d = new UvDrive();
  d->client_ = client;
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  // The handles' close callbacks are code of this addon: when the environment ends, it waits
  // for them before it unloads the addon. The hook is removed by the last close callback.
  napi_add_async_cleanup_hook(env, &UvDrive::OnEnvCleanup, d, &d->hook_);
  uv_poll_init(loop, &d->poll_, pollFd);
  d->poll_.data = d;
  uv_poll_start(&d->poll_, UV_READABLE, &UvDrive::OnPoll);
  uv_unref(reinterpret_cast<uv_handle_t*>(&d->poll_));  // keepAlive() refs it while there is work
  uv_timer_init(loop, &d->timer_);
  d->timer_.data = d;
  uv_unref(reinterpret_cast<uv_handle_t*>(&d->timer_));
  uv_idle_init(loop, &d->idle_);
  d->idle_.data = d;
  uv_unref(reinterpret_cast<uv_handle_t*>(&d->idle_));
  return d;
}

void UvDrive::armDeadline(int64_t deadline, int64_t ms) {
  armedDeadline_ = deadline;
  if (deadline == 0) {
    uv_timer_stop(&timer_);
  } else {
    uv_timer_start(&timer_, &UvDrive::OnTimer, static_cast<uint64_t>(ms < 0 ? 0 : ms), 0);
  }
}

void UvDrive::keepAlive(bool on) {
  if (on) {
    uv_ref(reinterpret_cast<uv_handle_t*>(&poll_));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll_));
  }
}

void UvDrive::close() {
  client_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &UvDrive::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &UvDrive::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), &UvDrive::OnClose);
}

void UvDrive::OnPoll(uv_poll_t* p, int status, int events) {
  auto* d = static_cast<UvDrive*>(p->data);
  if (!d->live()) return;
  d->client_->uvReady();
}

void UvDrive::OnTimer(uv_timer_t* t) {
  auto* d = static_cast<UvDrive*>(t->data);
  if (!d->live()) return;
  d->armedDeadline_ = 0;
  d->client_->uvDeadline();
}

void UvDrive::OnIdle(uv_idle_t* i) {
  auto* d = static_cast<UvDrive*>(i->data);
  uv_idle_stop(i);
  if (!d->live()) return;
  d->idleActive_ = false;
  d->client_->uvIdle();
}

void UvDrive::OnClose(uv_handle_t* h) {
  auto* d = static_cast<UvDrive*>(h->data);
  if (--d->open_ > 0) return;
  if (d->hook_) napi_remove_async_cleanup_hook(d->hook_);
  delete d;
}

// The environment ends with the handles open (the client alive, or torn down with the close
// callbacks still to run): the client tears down (and closes them); the environment waits until
// the last close callback removes the hook.
void UvDrive::OnEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* d = static_cast<UvDrive*>(arg);
  if (d->client_) d->client_->uvEnvEnding();
}

}  // namespace async_engine
