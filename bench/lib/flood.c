/*
 * The "bad clients" flood of bench/cases/bad-clients.js: opens TOTAL connections to a loopback
 * server, CONCURRENCY of them (not counting silent ones) at a time, each with one bad first
 * line, and waits for the server to answer and close each. Written in C on epoll so that the
 * client side costs a few syscalls per connection and leaves the CPU to the server measured.
 *
 * The mix, by connection index i (deterministic; bytes from a seeded generator):
 *   i % 10 == 0   silent: sends nothing, waits for the server's timeout to cut it (10 %)
 *   i % 5  == 1   a line of LONG_LINE bytes, over the server's line limit, then CRLF (20 %)
 *   otherwise     a garbage line: 1 to 100 random bytes (no LF, not starting with 'H'), CRLF
 *
 * Each connection counts as `replied` when the bytes it received before EOF (or a reset) are
 * exactly the expected reply. Prints one JSON object on stdout.
 *
 * usage: flood HOST PORT TOTAL CONCURRENCY SEED REPLY DEADLINE_MS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LONG_LINE 300
#define KEEP 64

enum kind { GARBAGE, LONG, SILENT };
enum state { CONNECTING, READING };

struct conn {
  int used;
  enum kind kind;
  enum state state;
  size_t got;
  char buf[KEEP];
};

static struct conn *conns;
static int nconns;
static uint64_t rng;

static uint32_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: flood HOST PORT TOTAL CONCURRENCY SEED REPLY DEADLINE_MS\n");
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "flood: not an IPv4 address: %s\n", argv[1]);
    return 2;
  }
  const long total = atol(argv[3]);
  const int concurrency = atoi(argv[4]);
  rng = strtoull(argv[5], NULL, 10) * 2654435761u + 88172645463325252ull;
  const char *reply = argv[6];
  const size_t replyLen = strlen(reply);
  const double deadline = now_s() + atof(argv[7]) / 1000;

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  nconns = rl.rlim_cur > 1 << 20 ? 1 << 20 : (int)rl.rlim_cur;
  conns = calloc(nconns, sizeof *conns);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || ep < 0) {
    perror("flood");
    return 1;
  }

  long started = 0, done = 0, replied = 0, resets = 0, connectFailed = 0, otherErrors = 0;
  long byKind[3] = {0, 0, 0};
  int inflight = 0;  // connections that are not silent
  int silentInflight = 0;
  int maxSilent = 0;
  char line[LONG_LINE + 2];
  char rbuf[4096];
  const double t0 = now_s();
  int timedOut = 0;

  while (done + connectFailed < total) {
    while (started < total && inflight < concurrency) {
      enum kind k = started % 10 == 0 ? SILENT : started % 5 == 1 ? LONG : GARBAGE;
      started++;
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0 || fd >= nconns) {
        if (fd >= 0) close(fd);
        connectFailed++;
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        connectFailed++;
        continue;
      }
      struct conn *c = &conns[fd];
      memset(c, 0, sizeof *c);
      c->used = 1;
      c->kind = k;
      c->state = CONNECTING;
      byKind[k]++;
      if (k == SILENT) {
        silentInflight++;
        if (silentInflight > maxSilent) maxSilent = silentInflight;
      } else {
        inflight++;
      }
      struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    if (now_s() > deadline) {
      timedOut = 1;
      break;
    }
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, 200);
    if (n < 0 && errno != EINTR) {
      perror("flood: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      struct conn *c = &conns[fd];
      if (!c->used) continue;
      int finished = 0;
      if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          // Refused or reset before the connection was up.
          connectFailed++;
          byKind[c->kind]--;
          c->used = 0;
          if (c->kind == SILENT) silentInflight--;
          else inflight--;
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
          close(fd);
          continue;
        }
        if (!(evs[i].events & (EPOLLOUT | EPOLLIN | EPOLLRDHUP | EPOLLHUP))) continue;
        c->state = READING;
        if (c->kind != SILENT) {
          size_t len2;
          if (c->kind == LONG) {
            for (int j = 0; j < LONG_LINE; j++) {
              char b = (char)('a' + next_random() % 26);
              line[j] = b;
            }
            line[0] = 'x';
            len2 = LONG_LINE;
          } else {
            len2 = 1 + next_random() % 100;
            for (size_t j = 0; j < len2; j++) {
              char b = (char)(1 + next_random() % 255);
              line[j] = b == '\n' ? ' ' : b;
            }
            if (line[0] == 'H') line[0] = '?';
          }
          line[len2] = '\r';
          line[len2 + 1] = '\n';
          ssize_t w = send(fd, line, len2 + 2, MSG_NOSIGNAL);
          (void)w;  // a short or failed send shows as a missing reply below
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
      }
      for (;;) {
        ssize_t r = recv(fd, rbuf, sizeof rbuf, 0);
        if (r > 0) {
          size_t room = KEEP - c->got;
          size_t take = (size_t)r < room ? (size_t)r : room;
          memcpy(c->buf + c->got, rbuf, take);
          c->got += take;
          continue;
        }
        if (r == 0) {
          finished = 1;
        } else if (errno == ECONNRESET) {
          resets++;
          finished = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
          otherErrors++;
          finished = 1;
        }
        break;
      }
      if (finished) {
        if (c->got == replyLen && memcmp(c->buf, reply, replyLen) == 0) replied++;
        done++;
        c->used = 0;
        if (c->kind == SILENT) silentInflight--;
        else inflight--;
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
      }
    }
  }
  const double seconds = now_s() - t0;
  printf(
      "{\"total\":%ld,\"done\":%ld,\"replied\":%ld,\"resets\":%ld,\"connectFailed\":%ld,"
      "\"otherErrors\":%ld,\"garbage\":%ld,\"long\":%ld,\"silent\":%ld,\"maxSilentInFlight\":%d,"
      "\"seconds\":%.6f,\"timedOut\":%s}\n",
      total, done, replied, resets, connectFailed, otherErrors, byKind[GARBAGE], byKind[LONG],
      byKind[SILENT], maxSilent, seconds, timedOut ? "true" : "false");
  return timedOut ? 3 : 0;
}
