/* test_heap.c - unit tests for policies/heap: order, index tracking, removal, re-keying, room.
 * Never touches the network, the disk or Slurm. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heap.h"

typedef struct item {
    int key;
    size_t slot;
} item;

static bool before(const void *a, const void *b)
{
    return ((const item *)a)->key > ((const item *)b)->key;
}

static void moved(void *it, size_t index)
{
    ((item *)it)->slot = index;
}

/* A deterministic pseudo-random sequence (xorshift32). */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Checks the heap property and that every item's slot is where it sits. */
static void assert_heap_ok(const heap *h)
{
    for (size_t i = 0; i < heap_len(h); i++) {
        const item *it = heap_at(h, i);
        assert_int_equal(it->slot, i);
        if (i > 0) assert_true(((const item *)heap_at(h, (i - 1) / 2))->key >= it->key);
    }
}

static void pop_returns_items_highest_first(void **state)
{
    (void)state;
    heap h;
    item items[200];
    uint32_t s = 12345;
    heap_init(&h, before, moved);
    for (int i = 0; i < 200; i++) {
        items[i].key = (int)(next_rand(&s) % 1000);
        assert_int_equal(heap_push(&h, &items[i]), 0);
    }
    assert_heap_ok(&h);
    int last = 1000000;
    for (int i = 0; i < 200; i++) {
        item *it = heap_pop(&h);
        assert_non_null(it);
        assert_true(it->key <= last);
        assert_int_equal(it->slot, HEAP_NONE);
        last = it->key;
    }
    assert_null(heap_pop(&h));
    assert_null(heap_top(&h));
    heap_close(&h);
}

static void remove_by_reported_slot_keeps_the_order(void **state)
{
    (void)state;
    heap h;
    item items[100];
    heap_init(&h, before, moved);
    for (int i = 0; i < 100; i++) {
        items[i].key = (i * 37) % 101;
        assert_int_equal(heap_push(&h, &items[i]), 0);
    }
    for (int i = 0; i < 100; i += 3) {
        assert_ptr_equal(heap_remove(&h, items[i].slot), &items[i]);
        assert_int_equal(items[i].slot, HEAP_NONE);
        assert_heap_ok(&h);
    }
    assert_int_equal(heap_len(&h), 100 - 34);
    assert_null(heap_remove(&h, 1000));
    heap_close(&h);
}

static void fix_moves_a_re_keyed_item_up_or_down(void **state)
{
    (void)state;
    heap h;
    item items[50];
    heap_init(&h, before, moved);
    for (int i = 0; i < 50; i++) {
        items[i].key = i;
        heap_push(&h, &items[i]);
    }
    items[3].key = 1000;
    heap_fix(&h, items[3].slot);
    assert_ptr_equal(heap_top(&h), &items[3]);
    assert_heap_ok(&h);
    items[3].key = -5;
    heap_fix(&h, items[3].slot);
    assert_ptr_equal(heap_top(&h), &items[49]);
    assert_heap_ok(&h);
    heap_close(&h);
}

static void rebuild_restores_the_order_after_many_changes(void **state)
{
    (void)state;
    heap h;
    item items[64];
    uint32_t s = 99;
    heap_init(&h, before, moved);
    for (int i = 0; i < 64; i++) {
        items[i].key = i;
        heap_push(&h, &items[i]);
    }
    for (int i = 0; i < 64; i++)
        items[i].key = (int)(next_rand(&s) % 500);
    heap_rebuild(&h);
    assert_heap_ok(&h);
    heap_close(&h);
}

static void reserved_room_means_pushes_never_grow(void **state)
{
    (void)state;
    heap h;
    item items[10] = {{0}};
    heap_init(&h, before, moved);
    assert_int_equal(heap_reserve(&h, 10), 0);
    void **arr = h.items;
    size_t cap = h.cap;
    for (int i = 0; i < 10; i++)
        assert_int_equal(heap_push(&h, &items[i]), 0);
    assert_ptr_equal(h.items, arr);
    assert_int_equal(h.cap, cap);
    heap_close(&h);
}

static void close_accepts_null_and_a_closed_heap(void **state)
{
    (void)state;
    heap h;
    heap_close(NULL);
    heap_init(&h, before, NULL);
    heap_close(&h);
    heap_close(&h);
    assert_int_equal(heap_len(&h), 0);
    assert_null(heap_at(&h, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pop_returns_items_highest_first),
        cmocka_unit_test(remove_by_reported_slot_keeps_the_order),
        cmocka_unit_test(fix_moves_a_re_keyed_item_up_or_down),
        cmocka_unit_test(rebuild_restores_the_order_after_many_changes),
        cmocka_unit_test(reserved_room_means_pushes_never_grow),
        cmocka_unit_test(close_accepts_null_and_a_closed_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
