/* One pass over a batch of log members: lines, events, head fields, key/value pairs.
 *
 * The compiled twin of calo_polars/parse/events.py (lines_frame → cut_long_lines →
 * split_events → key_values). It produces exactly the columns of that Polars path, as Arrow
 * buffers: fixed-width values, validity bitmaps, and string *views* (Arrow Utf8View) that point
 * into one joined copy of the batch's text, so no string is copied. tokenize.py wraps the
 * buffers with pyarrow.Array.from_buffers and pl.from_arrow. Where the regexes of events.py
 * use Unicode classes (\w, \s, \b), the same classes are used here: Unicode White_Space is a
 * short fixed list; "is a word character" for a non-ASCII character is asked of a Python
 * callable (Polars' own regex engine, cached), which is rare enough to cost nothing.
 *
 * tests/test_tokenize.py fuzzes this against the Polars path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ growable buffers */

typedef struct {
    char *p;
    size_t len, cap;
} Vec;

static int vec_grow(Vec *v, size_t need) {
    if (need <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 4096;
    while (cap < need) cap *= 2;
    char *p = realloc(v->p, cap);
    if (!p) return -1;
    v->p = p;
    v->cap = cap;
    return 0;
}

/* A column: values (fixed width `size` bytes each) and, when nullable, a validity bitmap. */
typedef struct {
    Vec data;
    Vec bits;
    size_t n;
    size_t size;
    int nullable;
} Col;

typedef struct {
    int32_t len;
    union {
        char inl[12];
        struct {
            char prefix[4];
            int32_t buf;
            int32_t off;
        } ref;
    } u;
} View;

static int vec_exact(Vec *v, size_t need) {
    if (need <= v->cap) return 0;
    char *p = realloc(v->p, need);
    if (!p) return -1;
    v->p = p;
    v->cap = need;
    return 0;
}

static int col_reserve(Col *c, size_t n) {
    if (vec_exact(&c->data, n * c->size + 16)) return -1;
    if (c->nullable && vec_exact(&c->bits, ((n + 7) >> 3) + 1)) return -1;
    return 0;
}

static inline int col_push(Col *c, const void *value, int valid) {
    if ((c->n + 1) * c->size > c->data.cap && vec_grow(&c->data, (c->n + 1) * c->size)) return -1;
    char *dst = c->data.p + c->n * c->size;
    switch (c->size) { /* fixed sizes, so the copies are inlined */
    case 4:
        memcpy(dst, value, 4);
        break;
    case 8:
        memcpy(dst, value, 8);
        break;
    default:
        memcpy(dst, value, 16);
    }
    if (c->nullable) {
        size_t byte = c->n >> 3;
        if (byte >= c->bits.cap && vec_grow(&c->bits, byte + 1)) return -1;
        if ((c->n & 7) == 0) c->bits.p[byte] = 0;
        if (valid) c->bits.p[byte] |= (char)(1u << (c->n & 7));
    }
    c->n++;
    return 0;
}

static void col_set_view(Col *c, size_t i, View v) {
    memcpy(c->data.p + i * c->size, &v, sizeof v);
    c->bits.p[i >> 3] |= (char)(1u << (i & 7));
}

static View view_of(const char *base, size_t off, size_t len, int32_t buf) {
    View v;
    memset(&v, 0, sizeof v);
    v.len = (int32_t)len;
    if (len <= 12) {
        memcpy(v.u.inl, base + off, len);
    } else {
        memcpy(v.u.ref.prefix, base + off, 4);
        v.u.ref.buf = buf;
        v.u.ref.off = (int32_t)off;
    }
    return v;
}

static const View NULL_VIEW = {0, {{0}}};

/* ------------------------------------------------------------------ the Buf type */

/* Memory made by malloc, handed to Python as a read-only buffer (pa.py_buffer wraps it). */
typedef struct {
    PyObject_HEAD char *p;
    Py_ssize_t len;
} Buf;

static void buf_dealloc(Buf *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int buf_getbuffer(Buf *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->p ? self->p : "", self->len, 1, flags);
}

static PyBufferProcs buf_as_buffer = {(getbufferproc)buf_getbuffer, NULL};

static PyTypeObject BufType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "calo_polars.parse._tokenize.Buf",
    .tp_basicsize = sizeof(Buf),
    .tp_dealloc = (destructor)buf_dealloc,
    .tp_as_buffer = &buf_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "malloc'd memory exposed as a read-only buffer",
};

/* A Buf owning `v`'s memory (v is emptied). */
static PyObject *buf_take(Vec *v, size_t len) {
    Buf *b = PyObject_New(Buf, &BufType);
    if (!b) return NULL;
    b->p = v->p;
    b->len = (Py_ssize_t)len;
    v->p = NULL;
    v->len = v->cap = 0;
    return (PyObject *)b;
}

/* (n, values, validity or None) */
static PyObject *col_take(Col *c) {
    PyObject *data = buf_take(&c->data, c->n * c->size);
    if (!data) return NULL;
    PyObject *bits;
    if (c->nullable) {
        bits = buf_take(&c->bits, (c->n + 7) >> 3);
        if (!bits) {
            Py_DECREF(data);
            return NULL;
        }
    } else {
        bits = Py_NewRef(Py_None);
    }
    return Py_BuildValue("(nNN)", (Py_ssize_t)c->n, data, bits);
}

/* ------------------------------------------------------------------ character classes */

/* The code point at p (valid UTF-8, at least one byte left), and its length in bytes. */
static uint32_t decode(const unsigned char *p, const unsigned char *end, int *nbytes) {
    unsigned c = p[0];
    ptrdiff_t left = end - p;
    if (c >= 0xC0 && c < 0xE0 && left >= 2) {
        *nbytes = 2;
        return ((c & 0x1F) << 6) | (p[1] & 0x3F);
    }
    if (c >= 0xE0 && c < 0xF0 && left >= 3) {
        *nbytes = 3;
        return ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    }
    if (c >= 0xF0 && left >= 4) {
        *nbytes = 4;
        return ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
    *nbytes = 1;
    return c;
}

/* Unicode White_Space, which the regex crate's \s is. */
static int is_space_cp(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

typedef struct {
    PyObject *is_word; /* callable(code point) -> bool, for non-ASCII code points */
    PyThreadState *saved;
    int failed;        /* the callable raised */
    uint32_t cache_cp[256];
    signed char cache_val[256];
} Scan;

static int ascii_word(unsigned c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

/* \w of the regex crate (Unicode) for one code point. */
static int is_word_cp(Scan *sc, uint32_t cp) {
    if (cp < 0x80) return ascii_word(cp);
    unsigned slot = cp & 255;
    if (sc->cache_val[slot] >= 0 && sc->cache_cp[slot] == cp) return sc->cache_val[slot];
    if (sc->failed) return 0;
    PyEval_RestoreThread(sc->saved);
    int val = 0;
    PyObject *r = PyObject_CallFunction(sc->is_word, "I", (unsigned)cp);
    if (!r) {
        sc->failed = 1;
    } else {
        val = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (val < 0) {
            sc->failed = 1;
            val = 0;
        }
    }
    sc->saved = PyEval_SaveThread();
    sc->cache_cp[slot] = cp;
    sc->cache_val[slot] = (signed char)val;
    return val;
}

/* Length in bytes of the [\w$] character at p, or 0 when it is none. */
static int word_dollar_at(Scan *sc, const unsigned char *p, const unsigned char *end) {
    if (*p < 0x80) return (ascii_word(*p) || *p == '$') ? 1 : 0;
    int nb;
    uint32_t cp = decode(p, end, &nb);
    return is_word_cp(sc, cp) ? nb : 0;
}

static int key_start(unsigned c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '$'; }

static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }

/* ------------------------------------------------------------------ timestamps */

/* `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 bytes) with every digit a digit. */
static int stamp_shape(const unsigned char *p) {
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    for (int i = 0; i < 24; i++) {
        if (shape[i] == '0') {
            if (!is_digit(p[i])) return 0;
        } else if (p[i] != (unsigned char)shape[i]) {
            return 0;
        }
    }
    return 1;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

#define NUM2(p) (((p)[0] - '0') * 10 + ((p)[1] - '0'))

/* Epoch milliseconds of a stamp, as Polars' str.to_datetime(strict=False) reads it (second 60 is
 * a leap second: the next second), and null (0) for no real time or a time before year 1. */
static int parse_stamp(const unsigned char *p, int64_t *out) {
    int y = NUM2(p) * 100 + NUM2(p + 2);
    int mo = NUM2(p + 5), d = NUM2(p + 8), h = NUM2(p + 11), mi = NUM2(p + 14), s = NUM2(p + 17);
    int ms = (p[20] - '0') * 100 + NUM2(p + 21);
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 60) return 0;
    int leap = (y % 4 == 0) && (y % 100 != 0 || y % 400 == 0);
    int days_in = dim[mo - 1] + (mo == 2 && leap);
    if (d > days_in) return 0;
    int64_t t = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60 + s;
    t = t * 1000 + ms;
    if (t < INT64_C(-62135596800000)) return 0; /* before 0001-01-01: events.py's _time says null */
    *out = t;
    return 1;
}

/* ------------------------------------------------------------------ kinds */

enum {
    K_START, K_END, K_REPORT, K_INIT_START, K_INIT_REPORT, K_PLATFORM_OTHER, K_TIMEOUT, K_PROCESSING_MESSAGE,
    K_SYNC_START, K_SYNC_PUBLISHED, K_NOT_IN_SYNC, K_SKIP_CREATE, K_SKIP_ALREADY, K_SKIP_FLAG_FALSE, K_SYNC_ERROR,
    K_UNCAUGHT, K_INVOKE_ERROR, K_RUNTIME_CRASH, K_LOCK, K_SQS_BODY, K_SQS_RECORD, K_SLACK, K_EMF, K_OBJECT,
    K_APP_UNRECOGNIZED, K_ORPHAN, K_UNKNOWN, N_KINDS
};

static const char *KIND_NAMES[N_KINDS] = {
    "start", "end", "report", "init_start", "init_report", "platform_other", "timeout", "processing_message",
    "sync_start", "sync_published", "not_in_sync", "skip_create_subscription", "skip_already_synced",
    "skip_update_flag_false", "sync_error", "uncaught_exception", "invoke_error", "runtime_crash",
    "transaction_lock", "sqs_body", "sqs_record", "slack_notification", "emf_metric", "object", "app_unrecognized",
    "orphan", "unknown",
};

/* events.APP_PREFIXES, in order (first match wins); tokenize.py checks the two lists agree. */
typedef struct {
    int kind;
    const char *prefix;
} Prefix;

static const Prefix APP_PREFIXES[] = {
    {K_PROCESSING_MESSAGE, "Processing message "},
    {K_SYNC_START, "Start syncing the balance"},
    {K_SYNC_PUBLISHED, "SubscriptionBalanceUpdated event published"},
    {K_NOT_IN_SYNC, "Subscription balance and payment balance are not in sync"},
    {K_SKIP_CREATE, "Skipping the balance sync for create "},
    {K_SKIP_ALREADY, "Skipping the process, balance is already synced"},
    {K_SKIP_ALREADY, "Balance is already synced from other listeners"},
    {K_SKIP_FLAG_FALSE, "Skipping the process, Update Payment Balance Flag is set to false"},
    {K_SYNC_ERROR, "An error occured while syncing the balance"},
    {K_SYNC_ERROR, "An error occurred while syncing the balance"},
    {K_UNCAUGHT, "Uncaught Exception"},
    {K_INVOKE_ERROR, "Invoke Error"},
    {K_LOCK, "Transaction Lock created"},
    {K_SQS_BODY, "transaction {"},
    {K_SQS_BODY, "record.body {"},
    {K_SQS_RECORD, "record {"},
    {K_SLACK, "Sending slack notification"},
    {K_OBJECT, "{"},
};
#define N_PREFIXES (sizeof APP_PREFIXES / sizeof APP_PREFIXES[0])

static const char *PLATFORM_WORDS[] = {
    "START", "END", "REPORT", "INIT_START", "INIT_REPORT", "INIT_RUNTIME_DONE", "EXTENSION", "TELEMETRY",
};
static const int PLATFORM_KINDS[] = {
    K_START, K_END, K_REPORT, K_INIT_START, K_INIT_REPORT, K_PLATFORM_OTHER, K_PLATFORM_OTHER, K_PLATFORM_OTHER,
};

/* A kind's name as a view into the buffer of all names joined (module init fills KIND_AT). */
static size_t KIND_AT[N_KINDS];

static View kind_view(int kind) {
    const char *name = KIND_NAMES[kind];
    size_t len = strlen(name);
    View v;
    memset(&v, 0, sizeof v);
    v.len = (int32_t)len;
    if (len <= 12) {
        memcpy(v.u.inl, name, len);
    } else {
        memcpy(v.u.ref.prefix, name, 4);
        v.u.ref.off = (int32_t)KIND_AT[kind];
    }
    return v;
}

static int starts(const unsigned char *p, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(p, prefix, n) == 0;
}

static int is_kv_kind(int k) { return k == K_SYNC_START || k == K_NOT_IN_SYNC || k == K_OBJECT || k == K_SKIP_FLAG_FALSE; }

/* ------------------------------------------------------------------ the scan */

enum {
    H_FILE_ID, H_LINE_NO, H_TEXT, H_EVENT, H_NEXT_TEXT, H_PLATFORM, H_TIMEOUT_S, H_LEVEL, H_MSG, H_PLATFORM_REST,
    H_OTHER, H_TS, H_KIND, H_REQUEST_ID, N_HEAD_COLS
};
enum { B_EVENT, B_TEXT, N_BODY_COLS };
enum { KV_EVENT, KV_DEPTH, KV_PARENT, KV_KEY, KV_VALUE, N_KV_COLS };
enum { L_FILE_ID, L_LINE_NO, L_CHARS, N_LONG_COLS };
/* The transaction rows read here (records.transactions' fast path; see tx_rows). */
enum {
    T_EVENT, T_FILE_ID, T_LINE_NO, T_TS, T_REQUEST_ID, T_TX_ID, T_USER_ID, T_WALLET_ID, T_WALLET_SK, T_CURRENCY,
    T_TYPE, T_SOURCE, T_ACTION, T_LAYOUT, T_AMOUNT, T_VAT, T_OLD_BALANCE, T_NEW_BALANCE, T_PAYMENT_BALANCE,
    T_UPDATE_PAYMENT_BALANCE, T_METADATA_STATE, N_TX_COLS
};
/* The figures of REPORT lines (invocations.REPORT_RE's groups; see report_rows). */
enum { R_EVENT, R_DURATION_MS, R_BILLED_MS, R_MEMORY_MB, R_MAX_MEMORY_MB, R_INIT_MS, N_REPORT_COLS };

typedef struct {
    Col heads[N_HEAD_COLS];
    Col body[N_BODY_COLS];
    Col kv[N_KV_COLS];
    Col inline_kv[N_KV_COLS];
    Col longs[N_LONG_COLS];
    Col tx[N_TX_COLS];
    Col reports[N_REPORT_COLS];
    Vec kinds; /* each head's kind (one byte a head, head i = event i + 1) */
    Vec tx_text; /* the text of the T_* string columns: their own copy, so a kept row holds no batch text */
    const unsigned char *base;
    int oom;
    Scan sc;
} Out;

static void col_init(Col *c, size_t size, int nullable) {
    memset(c, 0, sizeof *c);
    c->size = size;
    c->nullable = nullable;
}

static void out_init(Out *o) {
    static const size_t head_size[N_HEAD_COLS] = {4, 4, 16, 4, 16, 16, 16, 16, 16, 16, 16, 8, 16, 16};
    static const int head_null[N_HEAD_COLS] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1};
    for (int i = 0; i < N_HEAD_COLS; i++) col_init(&o->heads[i], head_size[i], head_null[i]);
    col_init(&o->body[B_EVENT], 4, 0);
    col_init(&o->body[B_TEXT], 16, 0);
    for (int k = 0; k < 2; k++) {
        Col *kv = k ? o->inline_kv : o->kv;
        col_init(&kv[KV_EVENT], 4, 0);
        col_init(&kv[KV_DEPTH], 4, 0);
        col_init(&kv[KV_PARENT], 16, 1);
        col_init(&kv[KV_KEY], 16, 0);
        col_init(&kv[KV_VALUE], 16, 0);
    }
    col_init(&o->longs[L_FILE_ID], 4, 0);
    col_init(&o->longs[L_LINE_NO], 4, 0);
    col_init(&o->longs[L_CHARS], 8, 0);
    static const size_t tx_size[N_TX_COLS] = {4, 4, 4, 8, 16, 16, 16, 16, 16, 16, 16, 16, 16, 4, 16, 16, 16, 16, 16, 4, 4};
    static const int tx_null[N_TX_COLS] = {0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0};
    for (int i = 0; i < N_TX_COLS; i++) col_init(&o->tx[i], tx_size[i], tx_null[i]);
    col_init(&o->reports[R_EVENT], 4, 0);
    for (int i = R_DURATION_MS; i < N_REPORT_COLS; i++) col_init(&o->reports[i], 16, i == R_INIT_MS);
}

static void col_free(Col *c) {
    free(c->data.p);
    free(c->bits.p);
}

static void out_free(Out *o) {
    for (int i = 0; i < N_HEAD_COLS; i++) col_free(&o->heads[i]);
    for (int i = 0; i < N_BODY_COLS; i++) col_free(&o->body[i]);
    for (int i = 0; i < N_KV_COLS; i++) col_free(&o->kv[i]), col_free(&o->inline_kv[i]);
    for (int i = 0; i < N_LONG_COLS; i++) col_free(&o->longs[i]);
    for (int i = 0; i < N_TX_COLS; i++) col_free(&o->tx[i]);
    for (int i = 0; i < N_REPORT_COLS; i++) col_free(&o->reports[i]);
    free(o->kinds.p);
    free(o->tx_text.p);
}

#define PUSH(col, val, valid)                                  \
    do {                                                       \
        if (col_push((col), (val), (valid))) o->oom = 1;       \
    } while (0)

static inline void push_view(Out *o, Col *c, size_t off, size_t len) {
    View v = view_of((const char *)o->base, off, len, 0);
    PUSH(c, &v, 1);
}

static void push_null(Out *o, Col *c) { PUSH(c, &NULL_VIEW, 0); }

/* The key/value pair of one continuation line (events.KV_KEY_RE), if it has one. */
static void nested_pair(Out *o, size_t off, size_t len, uint32_t event, View *parent, int *has_parent) {
    const unsigned char *p = o->base + off, *end = p + len;
    size_t indent = 0;
    while (indent < len && p[indent] == ' ') indent++;
    const unsigned char *k = p + indent, *q;
    if (k >= end) return;
    if (key_start(*k)) {
        q = k + 1;
        int nb;
        while (q < end && (nb = word_dollar_at(&o->sc, q, end)) > 0) q += nb;
    } else if (*k == '\'') {
        q = k + 1;
        for (;;) {
            if (q >= end) return;
            if (*q == '\\') {
                if (q + 1 >= end) return;
                q += 2;
            } else if (*q == '\'') {
                q++;
                break;
            } else {
                q++;
            }
        }
    } else {
        return;
    }
    if (end - q < 2 || q[0] != ':' || q[1] != ' ') return;
    size_t key_off = (size_t)(k - o->base), key_len = (size_t)(q - k);
    size_t val_off = key_off + key_len + 2, val_len = (size_t)(end - q) - 2;
    if (val_len && o->base[val_off + val_len - 1] == ',') val_len--;
    int32_t depth = (int32_t)(indent / 2);
    View key = view_of((const char *)o->base, key_off, key_len, 0);
    Col *kv = o->kv;
    PUSH(&kv[KV_EVENT], &event, 1);
    PUSH(&kv[KV_DEPTH], &depth, 1);
    if (depth == 1) {
        PUSH(&kv[KV_PARENT], &NULL_VIEW, 0);
        *parent = key;
        *has_parent = 1;
    } else {
        PUSH(&kv[KV_PARENT], *has_parent ? parent : &NULL_VIEW, *has_parent);
    }
    PUSH(&kv[KV_KEY], &key, 1);
    push_view(o, &kv[KV_VALUE], val_off, val_len);
}

/* Where a quoted value starting at v (the quote) ends (one past the closing quote), or NULL. */
static const unsigned char *quoted_end(const unsigned char *v, const unsigned char *end, int *never) {
    unsigned char quote = *v;
    if (*never) return NULL;
    const unsigned char *q = v + 1;
    while (q < end) {
        if (*q == '\\' && quote != '`') {
            if (q + 1 >= end) break;
            q += 2;
        } else if (*q == quote) {
            return q + 1;
        } else {
            q++;
        }
    }
    *never = 1; /* no later value quoted the same way can end either (see tokenize.py) */
    return NULL;
}

/* The pairs of an object printed on the head line: events.key_values' "inline" frame. */
static void inline_pairs(Out *o, size_t off, size_t len, uint32_t event) {
    const unsigned char *msg = o->base + off, *end = msg + len;
    /* `\{ .* \}\s*$`: strip trailing white space, then " }" must end it */
    const unsigned char *t = end;
    while (t > msg) {
        const unsigned char *c = t - 1;
        while (c > msg && (*c & 0xC0) == 0x80) c--;
        int nb;
        if (!is_space_cp(decode(c, end, &nb))) break;
        t = c;
    }
    if (t - msg < 2 || t[-1] != '}' || t[-2] != ' ') return;
    const unsigned char *close = t - 2, *open = NULL;
    for (const unsigned char *s = msg; s + 2 <= close; s++) {
        if (s[0] == '{' && s[1] == ' ') {
            open = s;
            break;
        }
    }
    if (!open) return;
    const unsigned char *i = open + 2, *stop = close;
    int never[3] = {0, 0, 0}; /* ', ", ` */
    int32_t depth = 1;
    while (i < stop) {
        if (!key_start(*i)) {
            i++;
            continue;
        }
        const unsigned char *j = i + 1;
        int nb;
        while (j < stop && (nb = word_dollar_at(&o->sc, j, stop)) > 0) j += nb;
        const unsigned char *v = j + 2, *e = NULL;
        if (stop - j >= 2 && j[0] == ':' && j[1] == ' ' && v < stop) {
            if (*v == '\'' || *v == '"' || *v == '`') e = quoted_end(v, stop, &never[*v == '\'' ? 0 : *v == '"' ? 1 : 2]);
            if (!e) {
                const unsigned char *r = v;
                while (r < stop) {
                    if (*r == ',' || *r == '{' || *r == '}' || *r == '[' || *r == ']') break;
                    uint32_t cp = decode(r, stop, &nb);
                    if (is_space_cp(cp)) break;
                    r += nb;
                }
                if (r > v) e = r;
            }
        }
        if (!e) { /* every start inside this key fails the same way */
            i = j;
            continue;
        }
        Col *kv = o->inline_kv;
        PUSH(&kv[KV_EVENT], &event, 1);
        PUSH(&kv[KV_DEPTH], &depth, 1);
        push_null(o, &kv[KV_PARENT]);
        push_view(o, &kv[KV_KEY], (size_t)(i - o->base), (size_t)(j - i));
        push_view(o, &kv[KV_VALUE], (size_t)(v - o->base), (size_t)(e - v));
        i = e;
    }
}

/* The head fields of one event's first line (events.split_events). Returns its kind. */
static int head(Out *o, size_t off, size_t len, int stamped, uint32_t file_id, uint32_t line_no, uint32_t event,
                View *last_rid, int *has_rid) {
    const unsigned char *p = o->base + off, *end = p + len;
    Col *h = o->heads;
    PUSH(&h[H_FILE_ID], &file_id, 1);
    PUSH(&h[H_LINE_NO], &line_no, 1);
    push_view(o, &h[H_TEXT], off, len);
    PUSH(&h[H_EVENT], &event, 1);
    push_null(o, &h[H_NEXT_TEXT]);
    int kind;
    int64_t ts = 0;
    int ts_ok = stamped && parse_stamp(p, &ts);
    int is_app = 0, platform = -1, timeout = 0;
    size_t rid_off = 0, rid_len = 0, level_off = 0, level_len = 0, msg_off = 0, msg_len = 0;
    size_t word_len = 0, rest_off = 0, tos_off = 0, tos_len = 0;
    int has_own_rid = 0;
    if (stamped && len >= 50 && stamp_shape(p + 25) && p[49] == '\t') {
        const unsigned char *r = memchr(p + 50, '\t', len - 50);
        if (r) {
            const unsigned char *l = r + 1, *q = l;
            while (q < end && *q >= 'A' && *q <= 'Z') q++;
            if (q > l && q < end && *q == '\t') {
                is_app = 1;
                rid_off = off + 50, rid_len = (size_t)(r - p) - 50;
                level_off = (size_t)(l - o->base), level_len = (size_t)(q - l);
                msg_off = level_off + level_len + 1, msg_len = (size_t)(end - q) - 1;
                has_own_rid = 1;
            }
        }
    }
    if (stamped && !is_app) {
        const unsigned char *rest = p + 25;
        size_t rlen = len - 25;
        for (int w = 0; w < 8; w++) {
            if (!starts(rest, rlen, PLATFORM_WORDS[w])) continue;
            size_t n = strlen(PLATFORM_WORDS[w]);
            int boundary = 1;
            if (n < rlen) {
                int nb;
                boundary = !is_word_cp(&o->sc, decode(rest + n, end, &nb));
            }
            if (boundary) {
                platform = w;
                word_len = n;
            }
            break;
        }
        if (platform >= 0) {
            const unsigned char *q = rest + word_len;
            rest_off = (size_t)(q - o->base);
            if (starts(q, (size_t)(end - q), " RequestId: ")) {
                const unsigned char *s = q + 12, *e = s;
                int nb;
                while (e < end && !is_space_cp(decode(e, end, &nb))) e += nb;
                if (e > s) {
                    has_own_rid = 1;
                    rid_off = (size_t)(s - o->base), rid_len = (size_t)(e - s);
                    rest_off = rid_off + rid_len;
                }
            }
        } else if (rlen >= 36 + 22) {
            static const char uuid[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
            int ok = 1;
            for (int i = 0; i < 36 && ok; i++) {
                unsigned c = rest[i];
                ok = uuid[i] == '-' ? c == '-' : (is_digit(c) || (c >= 'a' && c <= 'f'));
            }
            if (ok && memcmp(rest + 36, " Task timed out after ", 22) == 0) {
                const unsigned char *s = rest + 58, *e = s;
                while (e < end && (is_digit(*e) || *e == '.')) e++;
                if (e > s && starts(e, (size_t)(end - e), " seconds")) {
                    timeout = 1;
                    has_own_rid = 1;
                    rid_off = off + 25, rid_len = 36;
                    tos_off = (size_t)(s - o->base), tos_len = (size_t)(e - s);
                }
            }
        }
    }
    /* platform, timeout_s, level, msg, platform_rest, other */
    if (platform >= 0) {
        push_view(o, &h[H_PLATFORM], off + 25, word_len);
    } else {
        push_null(o, &h[H_PLATFORM]);
    }
    if (timeout) {
        push_view(o, &h[H_TIMEOUT_S], tos_off, tos_len);
    } else {
        push_null(o, &h[H_TIMEOUT_S]);
    }
    if (is_app) {
        push_view(o, &h[H_LEVEL], level_off, level_len);
        push_view(o, &h[H_MSG], msg_off, msg_len);
    } else {
        push_null(o, &h[H_LEVEL]);
        push_null(o, &h[H_MSG]);
    }
    if (platform >= 0) {
        push_view(o, &h[H_PLATFORM_REST], rest_off, off + len - rest_off);
    } else {
        push_null(o, &h[H_PLATFORM_REST]);
    }
    int other = stamped && !is_app && platform < 0 && !timeout;
    if (other) {
        push_view(o, &h[H_OTHER], off + 25, len - 25);
    } else {
        push_null(o, &h[H_OTHER]);
    }
    PUSH(&h[H_TS], &ts, ts_ok);
    /* kind */
    if (!stamped) {
        kind = K_ORPHAN;
    } else if (!ts_ok) {
        kind = K_UNKNOWN;
    } else if (is_app) {
        kind = K_APP_UNRECOGNIZED;
        for (size_t i = 0; i < N_PREFIXES; i++) {
            if (starts(o->base + msg_off, msg_len, APP_PREFIXES[i].prefix)) {
                kind = APP_PREFIXES[i].kind;
                break;
            }
        }
    } else if (platform >= 0) {
        kind = PLATFORM_KINDS[platform];
    } else if (timeout) {
        kind = K_TIMEOUT;
    } else if (starts(p + 25, len - 25, "{\"_aws\":")) {
        kind = K_EMF;
    } else if (starts(p + 25, len - 25, "Unknown application error occurred")) {
        kind = K_RUNTIME_CRASH;
    } else {
        kind = K_UNKNOWN;
    }
    {
        View v = kind_view(kind);
        PUSH(&h[H_KIND], &v, 1);
        if (vec_grow(&o->kinds, o->kinds.len + 1)) o->oom = 1;
        else o->kinds.p[o->kinds.len++] = (char)kind;
    }
    /* request_id: own, else the nearest earlier head's of the same file */
    if (has_own_rid) {
        *last_rid = view_of((const char *)o->base, rid_off, rid_len, 0);
        *has_rid = 1;
    }
    PUSH(&h[H_REQUEST_ID], *has_rid ? last_rid : &NULL_VIEW, *has_rid);
    if (is_app && is_kv_kind(kind)) inline_pairs(o, msg_off, msg_len, event);
    return kind;
}

/* Number of characters (UTF-8 lead bytes) in p[0:len], and the byte length of the first `max` of them. */
static size_t count_chars(const unsigned char *p, size_t len, size_t max, size_t *cut) {
    size_t chars = 0;
    *cut = len;
    for (size_t i = 0; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            if (chars == max) *cut = i;
            chars++;
        }
    }
    return chars;
}

static void scan_member(Out *o, size_t off, size_t len, uint32_t file_id, size_t max_chars, uint32_t *event,
                        long *pending_next) {
    const unsigned char *p = o->base + off, *end = p + len;
    uint32_t line_no = 0;
    int first = 1, kind = -1, has_rid = 0, has_parent = 0;
    View last_rid = NULL_VIEW, parent = NULL_VIEW;
    const unsigned char *s = p;
    for (;;) {
        const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
        const unsigned char *e = nl ? nl : end;
        size_t lo = (size_t)(s - o->base), ll = (size_t)(e - s);
        line_no++;
        if (ll > max_chars) {
            size_t cut;
            size_t chars = count_chars(s, ll, max_chars, &cut);
            if (chars > max_chars) {
                int64_t c = (int64_t)chars;
                PUSH(&o->longs[L_FILE_ID], &file_id, 1);
                PUSH(&o->longs[L_LINE_NO], &line_no, 1);
                PUSH(&o->longs[L_CHARS], &c, 1);
                ll = cut;
            }
        }
        if (ll > 0) {
            int stamped = ll >= 25 && stamp_shape(s) && s[24] == ' ';
            if (stamped || first) {
                ++*event;
                *pending_next = (long)o->heads[H_FILE_ID].n;
                has_parent = 0;
                kind = head(o, lo, ll, stamped, file_id, line_no, *event, &last_rid, &has_rid);
            } else {
                View v = view_of((const char *)o->base, lo, ll, 0);
                PUSH(&o->body[B_EVENT], event, 1);
                PUSH(&o->body[B_TEXT], &v, 1);
                if (*pending_next >= 0 && !o->oom) {
                    col_set_view(&o->heads[H_NEXT_TEXT], (size_t)*pending_next, v);
                    *pending_next = -1;
                }
                if (is_kv_kind(kind)) nested_pair(o, lo, ll, *event, &parent, &has_parent);
            }
            first = 0;
        }
        if (!nl || o->oom || o->sc.failed) break;
        s = nl + 1;
    }
}

/* ------------------------------------------------------------------ transaction rows */

/* records.TX_KEYS, in that order. */
static const char *TX_KEYS[] = {"id",     "type",     "source",   "action", "userId", "paymentBalance",
                                "updatePaymentBalance", "metadata", "currency", "amount", "vat",
                                "oldBalance", "newBalance"};
enum { X_ID, X_TYPE, X_SOURCE, X_ACTION, X_USER_ID, X_PAYMENT, X_UPDATE, X_METADATA, X_CURRENCY, X_AMOUNT, X_VAT,
       X_OLD, X_NEW, N_TX_KEYS };
#define FULL_KEYS ((1u << N_TX_KEYS) - 1)
#define LEGACY_KEYS                                                                                           \
    ((1u << X_ID) | (1u << X_USER_ID) | (1u << X_CURRENCY) | (1u << X_AMOUNT) | (1u << X_VAT) | (1u << X_OLD) | \
     (1u << X_NEW))

static const unsigned char *view_bytes(const View *v, const unsigned char *base) {
    return v->len <= 12 ? (const unsigned char *)v->u.inl : base + v->u.ref.off;
}

/* The view of v's bytes [start, start + len) (inline when short, like view_of). */
static View sub_view(const View *v, const unsigned char *base, size_t start, size_t len) {
    if (len <= 12) {
        View s;
        memset(&s, 0, sizeof s);
        s.len = (int32_t)len;
        memcpy(s.u.inl, view_bytes(v, base) + start, len);
        return s;
    }
    return view_of((const char *)base, (size_t)v->u.ref.off + start, len, 0);
}

static int view_is(const View *v, const unsigned char *base, const char *s) {
    size_t n = strlen(s);
    return (size_t)v->len == n && memcmp(view_bytes(v, base), s, n) == 0;
}

/* records.unquote without escapes: 1 and the inner span for a quoted value without a backslash,
 * 0 for a value that is not quoted (null), -1 for one with a backslash (left to Polars). */
static int plain_quoted(const unsigned char *p, size_t n, size_t *len) {
    if (n < 2 || (p[0] != '\'' && p[0] != '"' && p[0] != '`') || p[n - 1] != p[0]) return 0;
    if (memchr(p + 1, '\\', n - 2)) return -1;
    *len = n - 2;
    return 1;
}

/* records.number: a util.inspect number as Decimal(38, 6) (str.to_decimal rounds half to even),
 * as an integer of millionths. 1 when read, 0 for `undefined`, -1 for anything left to Polars
 * (not a number, an exponent, a leading '.', more than 12 integer digits). */
static int money_of(const unsigned char *p, size_t n, int64_t *out) {
    if (n == 9 && memcmp(p, "undefined", 9) == 0) return 0;
    size_t i = 0;
    int neg = 0;
    if (i < n && p[i] == '-') neg = 1, i++;
    size_t first = i;
    while (i < n && is_digit(p[i])) i++;
    if (i == first) return -1;
    size_t sig = first;
    while (sig + 1 < i && p[sig] == '0') sig++;
    if (i - sig > 12) return -1;
    int64_t whole = 0;
    for (size_t k = sig; k < i; k++) whole = whole * 10 + (p[k] - '0');
    int64_t frac = 0;
    int digits = 0, round_digit = -1, sticky = 0;
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && is_digit(p[i])) {
            int d = p[i] - '0';
            if (digits < 6) {
                frac = frac * 10 + d;
                digits++;
            } else if (round_digit < 0) {
                round_digit = d;
            } else if (d) {
                sticky = 1;
            }
            i++;
        }
    }
    if (i != n) return -1;
    for (; digits < 6; digits++) frac *= 10;
    int64_t v = whole * 1000000 + frac;
    if (round_digit > 5 || (round_digit == 5 && (sticky || (v & 1)))) v++;
    *out = neg ? -v : v;
    return 1;
}

/* The first capture of `(?:^.|[{,])"<name>":"([^"\\]*)"` in p[0:n] (records.transactions'
 * walletId/walletSk extract): 1 and its span, else 0. */
static int json_field(const unsigned char *p, size_t n, const char *pat, size_t *start, size_t *len) {
    size_t m = strlen(pat);
    size_t lead = (p[0] < 0x80) ? 1 : (p[0] >= 0xF0) ? 4 : (p[0] >= 0xE0) ? 3 : 2;
    for (size_t k = 1; k + m <= n; k++) {
        if (p[k] != '"' || memcmp(p + k, pat, m) != 0) continue;
        if (!((k == lead && p[0] != '\n') || p[k - 1] == '{' || p[k - 1] == ',')) continue;
        size_t j = k + m;
        while (j < n && p[j] != '"' && p[j] != '\\') j++;
        if (j < n && p[j] == '"') {
            *start = k + m;
            *len = j - (k + m);
            return 1;
        }
    }
    return 0;
}

/* A copy of v's text into tx_text, as a view into it (null when !valid). */
static void push_copy(Out *o, Col *c, const View *v, int valid) {
    if (!valid) {
        PUSH(c, &NULL_VIEW, 0);
        return;
    }
    size_t len = (size_t)v->len, off = o->tx_text.len;
    if (len > 12) {
        if (vec_grow(&o->tx_text, off + len)) {
            o->oom = 1;
            return;
        }
        memcpy(o->tx_text.p + off, o->base + v->u.ref.off, len);
        o->tx_text.len += len;
        View w = view_of(o->tx_text.p, off, len, 0);
        PUSH(c, &w, 1);
    } else {
        PUSH(c, v, 1);
    }
}

static void push_money(Out *o, Col *c, int64_t v, int valid) {
    int64_t d[2] = {valid ? v : 0, valid && v < 0 ? -1 : 0}; /* Decimal128, little endian */
    PUSH(c, d, valid);
}

/* The transaction blocks (kind sync_start) that records.transactions would read without a note,
 * as rows of its table (T_*). Every other block (no object, a key missing, unknown or repeated,
 * an escape in a text value, a number it would reject or that needs more than int64 millionths,
 * a layout that is neither full nor legacy, an odd type or currency) is left to the Polars
 * path, which also writes why: tokenize.py sends it the events not in T_EVENT. `nested` is the
 * number of key/value rows of continuation lines (they come first, in event order). */
static void tx_rows(Out *o, size_t nested) {
    const unsigned char *base = o->base;
    Col *kv = o->kv, *h = o->heads, *t = o->tx;
    const uint32_t *kv_event = (const uint32_t *)kv[KV_EVENT].data.p;
    const int32_t *kv_depth = (const int32_t *)kv[KV_DEPTH].data.p;
    const View *kv_parent = (const View *)kv[KV_PARENT].data.p;
    const View *kv_key = (const View *)kv[KV_KEY].data.p;
    const View *kv_value = (const View *)kv[KV_VALUE].data.p;
    size_t r = 0;
    if (vec_grow(&o->tx_text, 1)) o->oom = 1; /* never a NULL buffer, even when every string is inline */
    for (size_t hi = 0; hi < o->kinds.len && !o->oom; hi++) {
        if (o->kinds.p[hi] != K_SYNC_START) continue;
        uint32_t event = (uint32_t)hi + 1;
        while (r < nested && kv_event[r] < event) r++;
        const View *val[N_TX_KEYS];
        unsigned seen = 0;
        int bad = 0;
        for (; r < nested && kv_event[r] == event; r++) {
            if (kv_depth[r] != 2 || !((kv[KV_PARENT].bits.p[r >> 3] >> (r & 7)) & 1)) continue;
            if (!view_is(&kv_parent[r], base, "transaction")) continue;
            int x = -1;
            for (int k = 0; k < N_TX_KEYS && x < 0; k++)
                if (view_is(&kv_key[r], base, TX_KEYS[k])) x = k;
            if (x < 0 || (seen >> x) & 1) bad = 1;
            else seen |= 1u << x, val[x] = &kv_value[r];
        }
        if (bad || (seen != FULL_KEYS && seen != LEGACY_KEYS)) continue;
        /* text values */
        View text[N_TX_KEYS];
        int has[N_TX_KEYS] = {0};
        static const int TEXT_KEYS[] = {X_ID, X_USER_ID, X_CURRENCY, X_TYPE, X_SOURCE, X_ACTION};
        for (int k = 0; k < 6 && !bad; k++) {
            int x = TEXT_KEYS[k];
            if (!((seen >> x) & 1)) continue;
            size_t len = 0;
            int q = plain_quoted(view_bytes(val[x], base), (size_t)val[x]->len, &len);
            if (q < 0 || (k < 3 && (q == 0 || len == 0))) bad = 1;
            else if (q) text[x] = sub_view(val[x], base, 1, len), has[x] = 1;
        }
        if (bad) continue;
        if (has[X_CURRENCY]) {
            const unsigned char *c = view_bytes(&text[X_CURRENCY], base);
            if (text[X_CURRENCY].len != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] < 'A' ||
                c[2] > 'Z')
                continue;
        }
        if ((seen >> X_TYPE) & 1) {
            if (!has[X_TYPE] || !(view_is(&text[X_TYPE], base, "DEBIT") || view_is(&text[X_TYPE], base, "CREDIT")))
                continue;
        }
        /* money */
        static const int MONEY_KEYS[] = {X_AMOUNT, X_VAT, X_OLD, X_NEW, X_PAYMENT};
        int64_t money[5] = {0};
        int money_ok[5] = {0};
        for (int k = 0; k < 5 && !bad; k++) {
            int x = MONEY_KEYS[k];
            if (!((seen >> x) & 1)) continue;
            int m = money_of(view_bytes(val[x], base), (size_t)val[x]->len, &money[k]);
            if (m < 0 || (m == 0 && x != X_PAYMENT)) bad = 1;
            money_ok[k] = m == 1;
        }
        if (bad) continue;
        /* metadata */
        int32_t state = 0; /* absent, undefined, json, json without walletId */
        View wallet = NULL_VIEW, sk = NULL_VIEW;
        int has_wallet = 0, has_sk = 0;
        if ((seen >> X_METADATA) & 1) {
            const View *mv = val[X_METADATA];
            const unsigned char *m = view_bytes(mv, base);
            size_t n = (size_t)mv->len, s, l;
            if (n == 9 && memcmp(m, "undefined", 9) == 0) {
                state = 1;
            } else {
                state = 3;
                for (size_t k = 0; k + 10 <= n; k++)
                    if (m[k] == '"' && memcmp(m + k, "\"walletId\"", 10) == 0) {
                        state = 2;
                        break;
                    }
            }
            if (n && json_field(m, n, "\"walletId\":\"", &s, &l)) wallet = sub_view(mv, base, s, l), has_wallet = 1;
            if (n && json_field(m, n, "\"walletSk\":\"", &s, &l)) sk = sub_view(mv, base, s, l), has_sk = 1;
        }
        int32_t update = 0;
        int has_update = 0;
        if ((seen >> X_UPDATE) & 1) {
            if (view_is(val[X_UPDATE], base, "true")) update = 1, has_update = 1;
            else if (view_is(val[X_UPDATE], base, "false")) has_update = 1;
        }
        int32_t layout = seen == FULL_KEYS ? 0 : 1;
        PUSH(&t[T_EVENT], &event, 1);
        PUSH(&t[T_FILE_ID], h[H_FILE_ID].data.p + hi * 4, 1);
        PUSH(&t[T_LINE_NO], h[H_LINE_NO].data.p + hi * 4, 1);
        PUSH(&t[T_TS], h[H_TS].data.p + hi * 8, 1);
        push_copy(o, &t[T_REQUEST_ID], (const View *)(h[H_REQUEST_ID].data.p + hi * 16),
                  (h[H_REQUEST_ID].bits.p[hi >> 3] >> (hi & 7)) & 1);
        push_copy(o, &t[T_TX_ID], &text[X_ID], 1);
        push_copy(o, &t[T_USER_ID], &text[X_USER_ID], 1);
        push_copy(o, &t[T_WALLET_ID], &wallet, has_wallet);
        push_copy(o, &t[T_WALLET_SK], &sk, has_sk);
        push_copy(o, &t[T_CURRENCY], &text[X_CURRENCY], 1);
        push_copy(o, &t[T_TYPE], &text[X_TYPE], has[X_TYPE]);
        push_copy(o, &t[T_SOURCE], &text[X_SOURCE], has[X_SOURCE]);
        push_copy(o, &t[T_ACTION], &text[X_ACTION], has[X_ACTION]);
        PUSH(&t[T_LAYOUT], &layout, 1);
        for (int k = 0; k < 5; k++) push_money(o, &t[T_AMOUNT + k], money[k], money_ok[k]);
        PUSH(&t[T_UPDATE_PAYMENT_BALANCE], &update, has_update);
        PUSH(&t[T_METADATA_STATE], &state, 1);
    }
}

/* ------------------------------------------------------------------ REPORT figures */

/* A run of [0-9.] (dots too when `dots`) at p[*j], at least one: 1 and *j past it. */
static int digit_run(const unsigned char *p, size_t n, size_t *j, int dots) {
    size_t k = *j;
    while (k < n && (is_digit(p[k]) || (dots && p[k] == '.'))) k++;
    if (k == *j) return 0;
    *j = k;
    return 1;
}

static int literal_at(const unsigned char *p, size_t n, size_t *j, const char *lit) {
    size_t m = strlen(lit);
    if (*j + m > n || memcmp(p + *j, lit, m) != 0) return 0;
    *j += m;
    return 1;
}

/* invocations.REPORT_RE's first match in p[0:n]: 1 and the spans (start, end) of its five
 * groups (the fifth, Init Duration, is optional: s[4][0] == s[4][1] == 0 when absent). Every
 * number is a run the literal after it cannot extend, so the regex never backtracks into one. */
static int report_fields(const unsigned char *p, size_t n, size_t s[5][2]) {
    static const char *after[4] = {" ms\tBilled Duration: ", " ms\tMemory Size: ", " MB\tMax Memory Used: ", " MB"};
    for (size_t i = 0; i + 10 <= n; i++) {
        if (p[i] != 'D' || memcmp(p + i, "Duration: ", 10) != 0) continue;
        size_t j = i + 10;
        int ok = 1;
        for (int g = 0; g < 4 && ok; g++) {
            s[g][0] = j;
            ok = digit_run(p, n, &j, g == 0) && (s[g][1] = j, literal_at(p, n, &j, after[g]));
        }
        if (!ok) continue;
        s[4][0] = s[4][1] = 0;
        size_t k = j;
        if (literal_at(p, n, &k, "\tInit Duration: ")) {
            size_t start = k;
            if (digit_run(p, n, &k, 1) && literal_at(p, n, &k, " ms")) s[4][0] = start, s[4][1] = k - 3;
        }
        return 1;
    }
    return 0;
}

/* The figures of every REPORT head whose platform_rest matches (invocations.reports' table). */
static void report_rows(Out *o) {
    Col *h = o->heads, *rc = o->reports;
    for (size_t hi = 0; hi < o->kinds.len && !o->oom; hi++) {
        if (o->kinds.p[hi] != K_REPORT || !((h[H_PLATFORM_REST].bits.p[hi >> 3] >> (hi & 7)) & 1)) continue;
        const View *rest = (const View *)(h[H_PLATFORM_REST].data.p + hi * 16);
        size_t s[5][2];
        if (!report_fields(view_bytes(rest, o->base), (size_t)rest->len, s)) continue;
        uint32_t event = (uint32_t)hi + 1;
        PUSH(&rc[R_EVENT], &event, 1);
        for (int g = 0; g < 5; g++) {
            if (g == 4 && s[4][1] == 0) {
                PUSH(&rc[R_INIT_MS], &NULL_VIEW, 0);
            } else {
                View v = sub_view(rest, o->base, s[g][0], s[g][1] - s[g][0]);
                PUSH(&rc[R_DURATION_MS + g], &v, 1);
            }
        }
    }
}

static int col_append(Col *dst, Col *src) {
    for (size_t i = 0; i < src->n; i++) {
        int valid = !src->nullable || (src->bits.p[i >> 3] >> (i & 7)) & 1;
        if (col_push(dst, src->data.p + i * src->size, valid)) return -1;
    }
    return 0;
}

static PyObject *cols_take(Col *cols, int n) {
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *c = col_take(&cols[i]);
        if (!c) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, c);
    }
    return t;
}

PyDoc_STRVAR(tokenize_doc,
             "tokenize(texts, file_ids, max_chars, is_word) -> (data, kind_names, heads, body, kv, long_lines, tx, tx_text, reports)\n\n"
             "texts: a sequence of bytes (one per member), file_ids: a sequence of ints (one per member, unique),\n"
             "is_word: callable(code point) -> bool for non-ASCII code points. Each table is a tuple of columns,\n"
             "each column (length, values buffer, validity buffer or None); string columns are Arrow views\n"
             "into `data` (kind: into `kind_names`; tx, the transaction rows read here: into `tx_text`; reports: into `data`).");

static PyObject *tokenize(PyObject *self, PyObject *args) {
    PyObject *texts_arg, *ids_arg, *is_word;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTuple(args, "OOnO", &texts_arg, &ids_arg, &max_chars, &is_word)) return NULL;
    PyObject *texts = PySequence_Tuple(texts_arg);
    if (!texts) return NULL;
    PyObject *ids = PySequence_Tuple(ids_arg);
    if (!ids) {
        Py_DECREF(texts);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(texts);
    if (PyTuple_GET_SIZE(ids) != n) {
        PyErr_SetString(PyExc_ValueError, "texts and file_ids differ in length");
        goto fail_args;
    }
    size_t *offs = malloc(sizeof(size_t) * (size_t)(n + 1));
    uint32_t *fids = malloc(sizeof(uint32_t) * (size_t)(n + 1));
    if (!offs || !fids) {
        free(offs), free(fids);
        PyErr_NoMemory();
        goto fail_args;
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(texts, i);
        if (!PyBytes_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "texts must be bytes");
            goto fail_arrays;
        }
        unsigned long id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(ids, i));
        if (PyErr_Occurred()) goto fail_arrays;
        offs[i] = total;
        fids[i] = (uint32_t)id;
        total += (size_t)PyBytes_GET_SIZE(t);
    }
    offs[n] = total;
    if (total >= (size_t)INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a batch of 2 GiB or more (string views hold 32-bit offsets)");
        goto fail_arrays;
    }
    Vec joined = {0, 0, 0};
    if (vec_grow(&joined, total + 1)) {
        PyErr_NoMemory();
        goto fail_arrays;
    }
    Out *o = calloc(1, sizeof(Out));
    if (!o) {
        free(joined.p);
        PyErr_NoMemory();
        goto fail_arrays;
    }
    out_init(o);
    o->base = (const unsigned char *)joined.p;
    o->sc.is_word = is_word;
    memset(o->sc.cache_val, -1, sizeof o->sc.cache_val);
    o->sc.saved = PyEval_SaveThread();
    for (Py_ssize_t i = 0; i < n; i++) { /* the tuple holds the bytes objects, which are immutable */
        memcpy(joined.p + offs[i], PyBytes_AS_STRING(PyTuple_GET_ITEM(texts, i)), offs[i + 1] - offs[i]);
    }
    {   /* exact sizes of the head and body columns first (a cheap pass), so no column is reallocated */
        size_t heads = 0, lines = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const unsigned char *s = o->base + offs[i], *end = o->base + offs[i + 1];
            int first = 1;
            for (;;) {
                const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
                const unsigned char *e = nl ? nl : end;
                if (e > s) {
                    lines++;
                    if (first || (e - s >= 25 && stamp_shape(s) && s[24] == ' ')) heads++;
                    first = 0;
                }
                if (!nl) break;
                s = nl + 1;
            }
        }
        for (int c = 0; c < N_HEAD_COLS; c++) o->oom |= col_reserve(&o->heads[c], heads) != 0;
        for (int c = 0; c < N_BODY_COLS; c++) o->oom |= col_reserve(&o->body[c], lines - heads) != 0;
        for (int c = 0; c < N_KV_COLS; c++) o->oom |= col_reserve(&o->kv[c], (lines - heads) / 4 * 3) != 0;
    }
    uint32_t event = 0;
    long pending = -1;
    for (Py_ssize_t i = 0; i < n && !o->oom && !o->sc.failed; i++) {
        scan_member(o, offs[i], offs[i + 1] - offs[i], fids[i], (size_t)max_chars, &event, &pending);
    }
    size_t nested = o->kv[KV_EVENT].n;
    for (int c = 0; c < N_KV_COLS && !o->oom; c++) {
        if (col_append(&o->kv[c], &o->inline_kv[c])) o->oom = 1;
    }
    if (!o->oom && !o->sc.failed) tx_rows(o, nested);
    if (!o->oom && !o->sc.failed) report_rows(o);
    PyEval_RestoreThread(o->sc.saved);
    PyObject *result = NULL;
    if (o->sc.failed) goto done;
    if (o->oom) {
        PyErr_NoMemory();
        goto done;
    }
    {
        size_t names = 0;
        for (int k = 0; k < N_KINDS; k++) names += strlen(KIND_NAMES[k]);
        PyObject *kinds = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)names);
        if (!kinds) goto done;
        char *w = PyBytes_AS_STRING(kinds);
        for (int k = 0; k < N_KINDS; k++) w += sprintf(w, "%s", KIND_NAMES[k]);
        PyObject *data = buf_take(&joined, total);
        if (!data) {
            Py_DECREF(kinds);
            goto done;
        }
        PyObject *h = cols_take(o->heads, N_HEAD_COLS), *b = cols_take(o->body, N_BODY_COLS);
        PyObject *kv = cols_take(o->kv, N_KV_COLS), *l = cols_take(o->longs, N_LONG_COLS);
        PyObject *tx = cols_take(o->tx, N_TX_COLS), *tx_text = buf_take(&o->tx_text, o->tx_text.len);
        PyObject *reports = cols_take(o->reports, N_REPORT_COLS);
        if (h && b && kv && l && tx && tx_text && reports)
            result = Py_BuildValue("(NNNNNNNNN)", data, kinds, h, b, kv, l, tx, tx_text, reports);
        if (!result) {
            Py_XDECREF(h), Py_XDECREF(b), Py_XDECREF(kv), Py_XDECREF(l), Py_XDECREF(tx), Py_XDECREF(tx_text);
            Py_XDECREF(reports);
            Py_DECREF(data), Py_DECREF(kinds);
        }
    }
done:
    out_free(o);
    free(o);
    free(joined.p);
    free(offs), free(fids);
    Py_DECREF(texts), Py_DECREF(ids);
    return result;
fail_arrays:
    free(offs), free(fids);
fail_args:
    Py_DECREF(texts), Py_DECREF(ids);
    return NULL;
}

static PyMethodDef methods[] = {
    {"tokenize", tokenize, METH_VARARGS, tokenize_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tokenize", "The single-pass tokenizer of calo_polars.parse (see tokenize.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__tokenize(void) {
    if (PyType_Ready(&BufType) < 0) return NULL;
    for (int k = 1; k < N_KINDS; k++) KIND_AT[k] = KIND_AT[k - 1] + strlen(KIND_NAMES[k - 1]);
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *names = PyTuple_New(N_KINDS);
    if (!names) {
        Py_DECREF(m);
        return NULL;
    }
    for (int k = 0; k < N_KINDS; k++) PyTuple_SET_ITEM(names, k, PyUnicode_FromString(KIND_NAMES[k]));
    PyObject *prefixes = PyList_New(0);
    for (size_t i = 0; i < N_PREFIXES; i++) {
        PyObject *pair = Py_BuildValue("(ss)", KIND_NAMES[APP_PREFIXES[i].kind], APP_PREFIXES[i].prefix);
        PyList_Append(prefixes, pair);
        Py_DECREF(pair);
    }
    if (PyModule_AddObject(m, "KIND_NAMES", names) < 0 || PyModule_AddObject(m, "APP_PREFIXES", prefixes) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
