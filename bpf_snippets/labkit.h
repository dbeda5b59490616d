/* labkit.h: what every labkit event snippet shares.
 *
 Every event snippet declares a ring buffer `events` and a per-CPU counter
 * `lost` that counts failed reservations (events the kernel had no room for),
 * and submits with BPF_RB_NO_WAKEUP: labkit polls the ring buffer in batches,
 * so waking a reader per event would only slow the traced program down.
 * (BCC does not allow map calls inside macros, so each snippet spells them out.)
 *
 * Parameters come in as -D flags, never by editing the C text:
 *   LK_RINGBUF_PAGES  ring buffer size in pages (power of two)
 *   LK_FILTER_PID     only events of this process (tgid); 0 = everyone
 */
#ifndef LK_RINGBUF_PAGES
#define LK_RINGBUF_PAGES 1024
#endif
#ifndef LK_FILTER_PID
#define LK_FILTER_PID 0
#endif

/* true when this event belongs to the process being watched */
static __always_inline int lk_wanted(u32 tgid) {
    return LK_FILTER_PID == 0 || tgid == LK_FILTER_PID;
}
