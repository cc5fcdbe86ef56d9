/* heap.h - an indexed binary max-heap of caller-owned pointers (the policy engine's queues).
 *
 * Pure library: no I/O, no logging. The heap never owns or frees its items; it only orders them.
 * "Indexed": every time an item moves, the heap tells the caller its new slot through the `moved`
 * callback, so that the caller can later remove or re-key that item in O(log n) without a search.
 * Not thread-safe.
 */
#ifndef ANTENNA_HEAP_H
#define ANTENNA_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* The slot reported to `moved` for an item that left the heap. */
#define HEAP_NONE ((size_t)-1)

/* Returns true when item `a` must come out of the heap before item `b` (a strict order: never
 * true for both (a, b) and (b, a)). */
typedef bool (*heap_before_fn)(const void *a, const void *b);

/* Tells the owner of `item` that it now sits in slot `index` (HEAP_NONE once it left the heap). */
typedef void (*heap_moved_fn)(void *item, size_t index);

typedef struct heap {
    void **items;
    size_t len, cap;
    heap_before_fn before;
    heap_moved_fn moved;
} heap;

/* Initialises an empty heap ordered by `before`; `moved` may be NULL (no index tracking). Never
 * allocates. Release with heap_close. */
void heap_init(heap *h, heap_before_fn before, heap_moved_fn moved);

/* Frees the heap's array (not its items). Accepts NULL and a closed heap. */
void heap_close(heap *h);

/* Makes room for at least `n` items, so that pushes up to that length never allocate. Returns 0
 * or -ENOMEM (the heap is unchanged). */
int heap_reserve(heap *h, size_t n);

/* Adds `item`. Returns 0, or -ENOMEM (only when the heap must grow past its reserved room; the
 * heap is then unchanged). O(log n). */
int heap_push(heap *h, void *item);

/* The first item (the one `before` puts ahead of every other), or NULL when empty. O(1). */
void *heap_top(const heap *h);

/* Removes and returns the first item, or NULL when empty. Never frees memory. O(log n). */
void *heap_pop(heap *h);

/* Removes and returns the item in slot `index` (as last reported to `moved`), or NULL when the
 * slot is out of range. O(log n). */
void *heap_remove(heap *h, size_t index);

/* Restores the order after the key of the item in slot `index` changed. O(log n). */
void heap_fix(heap *h, size_t index);

/* Restores the order after the keys of many items changed. O(n). */
void heap_rebuild(heap *h);

/* The number of items. */
size_t heap_len(const heap *h);

/* The item in slot `index` (0 .. heap_len - 1, in no particular order but slot 0 is the top), or
 * NULL when out of range. For read-only walks over every item. */
void *heap_at(const heap *h, size_t index);

#endif
