/* interrupt.c - the flag that stops long work: set from a signal handler,
 * read by the decoder, reader, writer and worker threads.  A C11 atomic
 * (lock-free, so async-signal-safe), not a volatile sig_atomic_t, which is
 * a data race once several threads read it. */
#include "base/base.h"

#include <stdatomic.h>

#if ATOMIC_INT_LOCK_FREE != 2
#error "the interrupt flag needs a lock-free atomic int to be async-signal-safe"
#endif

static atomic_int interrupted;

void vma_interrupt(void) { atomic_store(&interrupted, 1); }
void vma_interrupt_clear(void) { atomic_store(&interrupted, 0); }
gboolean vma_interrupted(void) { return atomic_load(&interrupted) != 0; }
