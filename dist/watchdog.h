// dist/watchdog.h: a thread per rank that ends the whole job when a collective does not
// finish in time (a peer died or hangs), naming the rank, instead of letting it hang.
// Blocking collectives (MPI) mark their start and end; asynchronous ones (NCCL, enqueued
// on a stream) are judged by a poll function of the communicator, which the thread calls
// every half second (NCCL's asynchronous errors, the age of the oldest unfinished one).
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct Watchdog Watchdog;

// The communicator's view: false with a reason in why[cap] if it is broken or stuck.
typedef bool (*WatchdogPoll)(void *ctx, double timeout_s, char *why, size_t cap);
// Make the communicator's pending work give up (NCCL: ncclCommAbort) before the job ends.
typedef void (*WatchdogCancel)(void *ctx);

// Start the thread for `rank`; poll and cancel may be NULL.
Watchdog *watchdog_start(int rank, double timeout_s, WatchdogPoll poll, WatchdogCancel cancel,
                         void *ctx);
// A blocking collective named `what` starts / has finished.
void watchdog_enter(Watchdog *w, const char *what);
void watchdog_leave(Watchdog *w);
// Stop and join the thread.
void watchdog_stop(Watchdog *w);
