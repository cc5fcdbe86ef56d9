/* rank.h - an order-statistic set of (key, id) pairs: insert, remove and "how many rank at or
 * above this key" in O(log n) expected (a treap with subtree sizes), for the policy engine's
 * queue positions.
 *
 * Pure library: no I/O, no logging, no allocation. Intrusive: the caller embeds a rank_node in
 * each of its items and owns it; the set only links nodes. Not thread-safe.
 */
#ifndef ANTENNA_RANK_H
#define ANTENNA_RANK_H

#include <stddef.h>
#include <stdint.h>

typedef struct rank_node {
    struct rank_node *left, *right;
    uint32_t size; /* nodes in this subtree */
    uint32_t prio; /* heap order of the treap, from the id */
    double key;
    int64_t id; /* breaks ties: pairs are unique */
} rank_node;

typedef struct rank_set {
    rank_node *root;
} rank_set;

/* An empty set. */
void rank_init(rank_set *s);

/* Adds node `n` with `key` and `id` (a pair not in the set). Never allocates. O(log n). */
void rank_insert(rank_set *s, rank_node *n, double key, int64_t id);

/* Removes node `n` (in the set, with the key and id it was inserted with). O(log n). */
void rank_remove(rank_set *s, rank_node *n);

/* The number of nodes whose key is >= `key`. O(log n). */
size_t rank_count_at_or_above(const rank_set *s, double key);

/* The number of nodes. */
size_t rank_size(const rank_set *s);

#endif
