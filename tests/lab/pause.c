/* The lab's pause image binary: sleeps until SIGTERM or SIGINT, then exits 0. */
#include <signal.h>
#include <unistd.h>

static void stop(int signum) {
    (void)signum;
    _exit(0);
}

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    for (;;)
        pause();
}
