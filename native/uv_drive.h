// `auto` drive: the Node event loop runs the engine. libuv watches the backend's pollable fd,
// a timer follows the next deadline and an idle handle delivers what calls into the engine
// finished, on the loop's next turn. The loop is kept alive only while the engine has
// something to wait for.
#pragma once

#include <node_api.h>
#include <uv.h>

#include <cstdint>

namespace async_engine {

// What the loop calls back. Each callback runs from a libuv callback, only while the client
// says JavaScript can run (canRun).
class UvDriveClient {
 public:
  virtual ~UvDriveClient() = default;
  virtual bool uvCanRun() = 0;
  virtual void uvReady() = 0;      // the backend's fd is readable
  virtual void uvDeadline() = 0;   // the armed deadline passed
  virtual void uvIdle() = 0;       // the turn after scheduleIdle()
  // The environment ends (a worker thread that exits, is terminated or calls process.exit())
  // while the handles are open: the client tears down; the environment waits for the handles'
  // close callbacks before it unloads the addon.
  virtual void uvEnvEnding() = 0;
};

class UvDrive {
 public:
  // Watches `pollFd` on the environment's loop, every handle unreferenced.
  static UvDrive* start(napi_env env, int pollFd, UvDriveClient* client);

  // uvIdle() runs once on the loop's next turn (once, however often this is called before).
  void scheduleIdle() {
    if (idleActive_) return;
    idleActive_ = true;
    uv_idle_start(&idle_, &UvDrive::OnIdle);
  }
  // The timer fires for `deadline` (CLOCK_MONOTONIC ns; 0: stopped), due in `ms`.
  void armDeadline(int64_t deadline, int64_t ms);
  // The deadline armed last; 0 once the timer fired or was stopped.
  int64_t armedDeadline() const { return armedDeadline_; }
  // Whether the poll handle keeps the loop alive.
  void keepAlive(bool on);
  // Forgets the client and closes the handles; the object frees itself with the last close
  // callback (asynchronously, so this works even while the client is being collected).
  void close();

 private:
  UvDrive() = default;
  static void OnPoll(uv_poll_t* p, int status, int events);
  static void OnTimer(uv_timer_t* t);
  static void OnIdle(uv_idle_t* i);
  static void OnClose(uv_handle_t* h);
  static void OnEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg);
  bool live() { return client_ && client_->uvCanRun(); }

  UvDriveClient* client_ = nullptr;  // null once closed
  uv_poll_t poll_;
  uv_timer_t timer_;
  uv_idle_t idle_;
  int open_ = 3;
  bool idleActive_ = false;
  int64_t armedDeadline_ = 0;
  napi_async_cleanup_hook_handle hook_ = nullptr;
};

}  // namespace async_engine
