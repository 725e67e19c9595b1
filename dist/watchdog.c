// dist/watchdog.c: the collective watchdog thread (see watchdog.h).
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../core/util.h"
#include "dist.h"

struct Watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    int rank;
    double timeout;
    const char *what; // the blocking collective in flight (NULL: none)
    double since;     // when it started
    WatchdogPoll poll;
    WatchdogCancel cancel;
    void *ctx;
};

// Print why, cancel the communicator's work and end the job.
static void fire(Watchdog *w, const char *why) {
    fprintf(stderr, "bolt: error: rank %d: %s; ending the job\n", w->rank, why);
    fflush(stderr);
    if (w->cancel) w->cancel(w->ctx);
    dist_abort(1);
}

// The thread: wake every half second (or when told to stop) and check.
static void *watch(void *arg) {
    Watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait(&w->wake, &w->mu, &ts);
        if (w->stop) break;
        if (rc != ETIMEDOUT && rc != 0) continue;
        char why[512];
        double age = w->what ? now_seconds() - w->since : 0;
        if (w->what && age > w->timeout) {
            snprintf(why, sizeof why,
                     "collective %s did not finish within collective_timeout = %.0f s (a peer "
                     "rank died or hangs)",
                     w->what, w->timeout);
            fire(w, why);
        }
        if (!w->poll) continue;
        // The poll may take a moment (it queries the device): not under the lock.
        pthread_mutex_unlock(&w->mu);
        bool ok = w->poll(w->ctx, w->timeout, why, sizeof why);
        pthread_mutex_lock(&w->mu);
        if (!ok && !w->stop) fire(w, why);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

Watchdog *watchdog_start(int rank, double timeout_s, WatchdogPoll poll, WatchdogCancel cancel,
                         void *ctx) {
    Watchdog *w = xcalloc(1, sizeof(Watchdog));
    w->rank = rank;
    w->timeout = timeout_s;
    w->poll = poll;
    w->cancel = cancel;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    check(pthread_create(&w->thread, NULL, watch, w) == 0,
          "rank %d: cannot start the collective watchdog thread", rank);
    return w;
}

void watchdog_enter(Watchdog *w, const char *what) {
    pthread_mutex_lock(&w->mu);
    w->what = what;
    w->since = now_seconds();
    pthread_mutex_unlock(&w->mu);
}

void watchdog_leave(Watchdog *w) {
    pthread_mutex_lock(&w->mu);
    w->what = NULL;
    pthread_mutex_unlock(&w->mu);
}

void watchdog_stop(Watchdog *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
