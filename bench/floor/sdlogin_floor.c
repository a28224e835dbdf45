/*
 * The floor: the sd-login calls of one full refresh, in C, with nothing else.
 *
 * One pass lists sessions, seats, uids and machines, then reads
 *   per session: uid, seat, type, class, state, service, active, remote
 *   per seat:    active, sessions, can_graphical, can_tty, can_multi_session
 *   per user:    state
 *   per machine: class
 * exactly as the exporter's full refresh does. Errors (objects that vanish between listing and
 * reading) are counted, not fatal. Prints one line of key=value pairs:
 *   sessions=N seats=N uids=N machines=N passes=R mean_ns=... min_ns=... errors=...
 *
 * With "default" after PASSES, per session only seat, type, class, state and remote: the calls
 * the exporter's default flags need (uid, service and active feed only --collector.session-info).
 *
 * Usage: sdlogin_floor [PASSES [default]]   (default 20; one warm-up pass is not counted)
 * Build: gcc -O2 -o sdlogin_floor sdlogin_floor.c $(pkg-config --cflags --libs libsystemd)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-login.h>
#include <time.h>
#include <unistd.h>

static int details = 1; /* 0: the default flags' calls only */

struct counts {
    int sessions, seats, uids, machines;
    long errors;
    unsigned long sink; /* keeps the compiler from dropping reads */
};

static void free_strv(char **v, int n) {
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void take_str(struct counts *c, int r, char *s) {
    if (r < 0)
        c->errors++;
    if (s) {
        c->sink += (unsigned char)s[0];
        free(s);
    }
}

static void take_int(struct counts *c, int r) {
    if (r < 0)
        c->errors++;
    else
        c->sink += (unsigned)r;
}

static void one_pass(struct counts *c) {
    char **sessions = NULL, **seats = NULL, **machines = NULL;
    uid_t *uids = NULL;
    int ns, nseat, nu, nm;

    ns = sd_get_sessions(&sessions);
    nseat = sd_get_seats(&seats);
    nu = sd_get_uids(&uids);
    nm = sd_get_machine_names(&machines);
    if (ns < 0) ns = 0;
    if (nseat < 0) nseat = 0;
    if (nu < 0) nu = 0;
    if (nm < 0) nm = 0;
    c->sessions = ns;
    c->seats = nseat;
    c->uids = nu;
    c->machines = nm;

    for (int i = 0; i < ns; i++) {
        const char *id = sessions[i];
        uid_t uid;
        char *s = NULL;
        if (details)
            take_int(c, sd_session_get_uid(id, &uid));
        int r = sd_session_get_seat(id, &s); /* seatless sessions: -ENODATA, not an error */
        take_str(c, r == -ENODATA ? 0 : r, s);
        s = NULL; take_str(c, sd_session_get_type(id, &s), s);
        s = NULL; take_str(c, sd_session_get_class(id, &s), s);
        s = NULL; take_str(c, sd_session_get_state(id, &s), s);
        if (details) {
            s = NULL; take_str(c, sd_session_get_service(id, &s), s);
            take_int(c, sd_session_is_active(id));
        }
        take_int(c, sd_session_is_remote(id));
    }
    for (int i = 0; i < nseat; i++) {
        const char *seat = seats[i];
        char *s = NULL;
        char **ss = NULL;
        uid_t *su = NULL;
        unsigned n = 0;
        int r = sd_seat_get_active(seat, &s, NULL);
        take_str(c, r == -ENODATA ? 0 : r, s);
        r = sd_seat_get_sessions(seat, &ss, &su, &n);
        take_int(c, r);
        free_strv(ss, r > 0 ? r : 0);
        free(su);
        take_int(c, sd_seat_can_graphical(seat));
        take_int(c, sd_seat_can_tty(seat));
        take_int(c, sd_seat_can_multi_session(seat));
    }
    for (int i = 0; i < nu; i++) {
        char *s = NULL;
        take_str(c, sd_uid_get_state(uids[i], &s), s);
    }
    for (int i = 0; i < nm; i++) {
        char *s = NULL;
        take_str(c, sd_machine_get_class(machines[i], &s), s);
    }
    free_strv(sessions, ns);
    free_strv(seats, nseat);
    free_strv(machines, nm);
    free(uids);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int passes = argc > 1 ? atoi(argv[1]) : 20;
    struct counts c = {0};
    long long total = 0, best = -1;

    if (passes < 1 || (argc > 2 && strcmp(argv[2], "default") != 0)) {
        fprintf(stderr, "usage: %s [PASSES>=1 [default]]\n", argv[0]);
        return 2;
    }
    details = argc <= 2;
    one_pass(&c); /* warm-up: page cache, dentries, lazy binding */
    c.errors = 0;
    for (int i = 0; i < passes; i++) {
        long long t0 = now_ns();
        one_pass(&c);
        long long dt = now_ns() - t0;
        total += dt;
        if (best < 0 || dt < best)
            best = dt;
    }
    printf("sessions=%d seats=%d uids=%d machines=%d passes=%d mean_ns=%lld min_ns=%lld "
           "errors=%ld sink=%lu\n",
           c.sessions, c.seats, c.uids, c.machines, passes, total / passes, best, c.errors,
           c.sink);
    return 0;
}
