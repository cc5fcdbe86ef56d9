/* heap.c - indexed binary max-heap of caller-owned pointers.
 * Must never do I/O, log, or free the items it orders. */
#include "heap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

void heap_init(heap *h, heap_before_fn before, heap_moved_fn moved)
{
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
    h->before = before;
    h->moved = moved;
}

void heap_close(heap *h)
{
    if (h == NULL) return;
    free(h->items);
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
}

int heap_reserve(heap *h, size_t n)
{
    if (n <= h->cap) return 0;
    size_t ncap = h->cap ? h->cap : 4;
    while (ncap < n) {
        if (ncap > SIZE_MAX / 2 / sizeof *h->items) return -ENOMEM;
        ncap *= 2;
    }
    void **items = realloc(h->items, ncap * sizeof *items);
    if (items == NULL) return -ENOMEM;
    h->items = items;
    h->cap = ncap;
    return 0;
}

/* Puts `item` in slot `i` and tells its owner. */
static void place(heap *h, size_t i, void *item)
{
    h->items[i] = item;
    if (h->moved) h->moved(item, i);
}

/* Moves the item of slot `i` up while it comes before its parent. Returns its final slot. */
static size_t sift_up(heap *h, size_t i)
{
    void *item = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!h->before(item, h->items[parent])) break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, item);
    return i;
}

/* Moves the item of slot `i` down while a child comes before it. */
static void sift_down(heap *h, size_t i)
{
    void *item = h->items[i];
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= h->len) break;
        size_t c = l;
        if (l + 1 < h->len && h->before(h->items[l + 1], h->items[l])) c = l + 1;
        if (!h->before(h->items[c], item)) break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, item);
}

int heap_push(heap *h, void *item)
{
    if (h->len == h->cap && heap_reserve(h, h->len + 1) < 0) return -ENOMEM;
    h->items[h->len++] = item;
    sift_up(h, h->len - 1);
    return 0;
}

void *heap_top(const heap *h)
{
    return h->len ? h->items[0] : NULL;
}

void *heap_remove(heap *h, size_t index)
{
    if (index >= h->len) return NULL;
    void *item = h->items[index];
    h->len--;
    if (index < h->len) {
        h->items[index] = h->items[h->len];
        heap_fix(h, index);
    }
    if (h->moved) h->moved(item, HEAP_NONE);
    return item;
}

void *heap_pop(heap *h)
{
    return heap_remove(h, 0);
}

void heap_fix(heap *h, size_t index)
{
    if (index >= h->len) return;
    if (sift_up(h, index) == index) sift_down(h, index);
}

void heap_rebuild(heap *h)
{
    /* every item that changes slot goes through place(), so every index stays current */
    for (size_t i = h->len / 2; i-- > 0;)
        sift_down(h, i);
}

size_t heap_len(const heap *h)
{
    return h->len;
}

void *heap_at(const heap *h, size_t index)
{
    return index < h->len ? h->items[index] : NULL;
}
