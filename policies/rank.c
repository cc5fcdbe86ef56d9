/* rank.c - an order-statistic treap of (key, id) pairs. No allocation, no I/O. */
#include "rank.h"

#include <stdbool.h>

static uint32_t size_of(const rank_node *n)
{
    return n ? n->size : 0;
}

static void update(rank_node *n)
{
    n->size = 1 + size_of(n->left) + size_of(n->right);
}

/* True when pair (k1, i1) orders before (k2, i2): keys ascending, then ids. */
static bool less(double k1, int64_t i1, double k2, int64_t i2)
{
    return k1 < k2 || (k1 == k2 && i1 < i2);
}

/* A well-mixed priority from the id (splitmix64), so the tree's shape is random whatever the
 * insertion order. */
static uint32_t prio_of(int64_t id)
{
    uint64_t z = (uint64_t)id + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)(z ^ (z >> 31));
}

/* Splits t into the pairs before (k, i) (*l) and the others (*r). */
static void split(rank_node *t, double k, int64_t i, rank_node **l, rank_node **r)
{
    if (t == NULL) {
        *l = *r = NULL;
        return;
    }
    if (less(t->key, t->id, k, i)) {
        split(t->right, k, i, &t->right, r);
        *l = t;
    } else {
        split(t->left, k, i, l, &t->left);
        *r = t;
    }
    update(t);
}

/* Joins l and r, every pair of l ordering before every pair of r. */
static rank_node *merge(rank_node *l, rank_node *r)
{
    if (l == NULL) return r;
    if (r == NULL) return l;
    if (l->prio > r->prio) {
        l->right = merge(l->right, r);
        update(l);
        return l;
    }
    r->left = merge(l, r->left);
    update(r);
    return r;
}

void rank_init(rank_set *s)
{
    s->root = NULL;
}

void rank_insert(rank_set *s, rank_node *n, double key, int64_t id)
{
    rank_node *l, *r;
    n->left = n->right = NULL;
    n->size = 1;
    n->key = key;
    n->id = id;
    n->prio = prio_of(id);
    split(s->root, key, id, &l, &r);
    s->root = merge(merge(l, n), r);
}

void rank_remove(rank_set *s, rank_node *n)
{
    rank_node **link = &s->root;
    while (*link != NULL && *link != n)
        link = less(n->key, n->id, (*link)->key, (*link)->id) ? &(*link)->left : &(*link)->right;
    if (*link == NULL) return; /* not in the set */
    *link = merge(n->left, n->right);
    /* the sizes on the path down to n shrink by one */
    for (rank_node *t = s->root; t != NULL && t != *link;) {
        t->size--;
        t = less(n->key, n->id, t->key, t->id) ? t->left : t->right;
    }
    n->left = n->right = NULL;
    n->size = 1;
}

size_t rank_count_at_or_above(const rank_set *s, double key)
{
    size_t count = 0;
    for (const rank_node *t = s->root; t != NULL;) {
        if (t->key >= key) {
            count += 1 + size_of(t->right);
            t = t->left;
        } else {
            t = t->right;
        }
    }
    return count;
}

size_t rank_size(const rank_set *s)
{
    return size_of(s->root);
}
