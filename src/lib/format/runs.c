/* runs.c - a set of cluster numbers kept as sorted runs [start, end) in a
 * balanced tree.
 *
 * Backups write clusters mostly in order, so a device's clusters collapse
 * into a handful of runs whatever its size.  A hostile archive that scatters
 * clusters costs one tree node per cluster it actually sends, and no more
 * than max_runs of them. */
#include "format/format.h"

struct vma_runs {
    uint64_t limit;     /* numbers are below this */
    uint64_t max_runs;
    GTree *tree;        /* key: start, value: end (exclusive), both as pointers */
};

/* 64-bit builds only: keys and values are cluster numbers + 1 as pointers */
G_STATIC_ASSERT(sizeof(gpointer) >= sizeof(uint64_t));
#define U2P(x) ((gpointer)(uintptr_t)(x))
#define P2U(p) ((uint64_t)(uintptr_t)(p))

static gint cmp_u64(gconstpointer a, gconstpointer b, gpointer ud)
{
    (void)ud;
    uint64_t x = P2U(a), y = P2U(b);
    return x < y ? -1 : x > y;
}

vma_runs *vma_runs_new(uint64_t limit, uint64_t max_runs)
{
    vma_runs *r = g_new0(vma_runs, 1);
    r->limit = limit;
    r->max_runs = max_runs;
    r->tree = g_tree_new_full(cmp_u64, NULL, NULL, NULL);
    return r;
}

void vma_runs_free(vma_runs *r)
{
    if (!r)
        return;
    g_tree_destroy(r->tree);
    g_free(r);
}

int vma_runs_add(vma_runs *r, uint64_t i)
{
    GTreeNode *next = g_tree_upper_bound(r->tree, U2P(i)); /* first start > i */
    GTreeNode *prev = next ? g_tree_node_previous(next) : g_tree_node_last(r->tree);
    uint64_t pend = prev ? P2U(g_tree_node_value(prev)) : 0;
    if (prev && pend > i)
        return 1; /* already in a run */
    gboolean joins_prev = prev && pend == i;
    gboolean joins_next = next && P2U(g_tree_node_key(next)) == i + 1;
    if (joins_prev && joins_next) {
        uint64_t nend = P2U(g_tree_node_value(next));
        g_tree_remove(r->tree, g_tree_node_key(next));
        g_tree_replace(r->tree, g_tree_node_key(prev), U2P(nend));
    } else if (joins_prev) {
        g_tree_replace(r->tree, g_tree_node_key(prev), U2P(i + 1));
    } else if (joins_next) {
        uint64_t nend = P2U(g_tree_node_value(next));
        g_tree_remove(r->tree, g_tree_node_key(next));
        g_tree_insert(r->tree, U2P(i), U2P(nend));
    } else {
        if ((uint64_t)g_tree_nnodes(r->tree) >= r->max_runs)
            return -1;
        g_tree_insert(r->tree, U2P(i), U2P(i + 1));
    }
    return 0;
}

gboolean vma_runs_contains(const vma_runs *r, uint64_t i)
{
    GTreeNode *next = g_tree_upper_bound(r->tree, U2P(i));
    GTreeNode *prev = next ? g_tree_node_previous(next) : g_tree_node_last(r->tree);
    return prev && P2U(g_tree_node_value(prev)) > i;
}

uint64_t vma_runs_count(const vma_runs *r)
{
    return (uint64_t)g_tree_nnodes(r->tree);
}

typedef struct {
    uint64_t pos;
    vma_gap_fn fn;
    void *ud;
} gap_walk;

static gboolean visit_run(gpointer key, gpointer value, gpointer ud)
{
    gap_walk *g = ud;
    uint64_t start = P2U(key);
    if (start > g->pos && g->fn)
        g->fn(g->pos, start, g->ud);
    g->pos = P2U(value);
    return FALSE;
}

void vma_runs_foreach_gap(const vma_runs *r, vma_gap_fn fn, void *ud)
{
    gap_walk g = {0, fn, ud};
    g_tree_foreach(r->tree, visit_run, &g);
    if (g.pos < r->limit && fn)
        fn(g.pos, r->limit, ud);
}

typedef struct {
    uint64_t missing, first;
} gap_count;

static void count_gap(uint64_t start, uint64_t end, void *ud)
{
    gap_count *c = ud;
    if (!c->missing)
        c->first = start;
    c->missing += end - start;
}

uint64_t vma_runs_missing(const vma_runs *r, uint64_t *first)
{
    gap_count c = {0, 0};
    vma_runs_foreach_gap(r, count_gap, &c);
    if (first)
        *first = c.first;
    return c.missing;
}
