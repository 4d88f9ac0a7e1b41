/* SPDX-License-Identifier: MIT */
/**
 * @file sg_runtime.h
 * @brief pysg C runtime: runs a `.sgm` model (docs/FORMAT.md) event-driven, in fixed
 *        point: a SpikingGamma model (version 1) bit-exact with pysg/intref.py, an
 *        imported int8 network (version 2) bit-exact with pysg/qnet.py and TFLite Micro.
 *
 * C99, no heap: the model stays where it is (e.g. in flash) and is never copied; all
 * state lives in one caller-provided arena of sg_arena_size() bytes. Typical use:
 *
 *     sg_model m;  sg_runtime rt;
 *     if (sg_model_load(&m, file, file_size) != SG_OK) ...   // validates in place
 *     static int32_t arena[...];                              // >= sg_arena_size(&m) bytes
 *     sg_runtime_init(&rt, &m, arena, sizeof arena);
 *     sg_feed(&rt, events, n);          // events with absolute µs timestamps
 *     sg_advance_to(&rt, t_now_us);     // close every step that ended by t_now_us
 *     int c = sg_prediction(&rt);
 *
 * Time, the same for every kind: step s covers [t0 + s dt, t0 + (s+1) dt) where t0 is
 * the first event's time (or the origin set by sg_set_origin); steps run whole and in
 * order. What a step does is the model kind's (sg_model_kind): a SpikingGamma step runs
 * in three phases (FORMAT.md §3): decays, input scatter (summed per input within each
 * run of events; the sum is the same), then layer by layer x, spikes and their scatter
 * into the next layer; an imported network's step turns the window of event counts into
 * its int8 input tensor and sends only the changes through its layers (FORMAT.md §8).
 * The kinds' views (sg_model.net) and state (sg_runtime.state) are the runtime's: read
 * a model and a runtime through the functions below.
 */
#ifndef SG_RUNTIME_H
#define SG_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Format constants, as numbers (the cffi cdef keeps only `#define SG_X <number>` lines);
 * each equals its generated twin in sg_format.h, checked at compile time by every source
 * file of the runtime (src/core/sg_internal.h). */
#define SG_FORMAT_VERSION 1u      /**< .sgm version of SpikingGamma models (= SG_FMT_VERSION_SG) */
#define SG_FORMAT_VERSION_QNET 2u /**< .sgm version of imported int8 networks (FORMAT.md §7-10) */
#define SG_FORMAT_VERSION_SNN 3u  /**< .sgm version of layered spiking networks, NIR's (FORMAT.md §11-15) */
#define SG_MAX_STAGES 16          /**< layer-table entries per model (= SG_FMT_MAX_STAGES) */
#define SG_MAX_BUCKETS 16         /**< Gamma buckets per layer (= SG_FMT_MAX_BUCKETS) */
#define SG_MAX_CLASSES 64         /**< outputs this runtime keeps logits and scores for */
#define SG_LABEL_SIZE 32          /**< bytes per class label slot, NUL-padded (= SG_FMT_LABEL_SIZE) */

/** Status of every public function that can fail: 0 ok, negative errors. */
typedef enum sg_status {
    SG_OK = 0,
    SG_ERR_ARG = -1,          /**< NULL pointer or invalid argument */
    SG_ERR_TRUNCATED = -2,    /**< buffer shorter than the header or than file_size */
    SG_ERR_MAGIC = -3,        /**< not an .sgm file */
    SG_ERR_VERSION = -4,      /**< format_version or header_size not supported */
    SG_ERR_CRC = -5,          /**< header or payload CRC-32 mismatch */
    SG_ERR_HEADER = -6,       /**< a header field out of range */
    SG_ERR_LABEL = -7,        /**< a class label is empty, unterminated or not UTF-8 */
    SG_ERR_LAYER = -8,        /**< a layer-table field out of range or inconsistent */
    SG_ERR_BLOB = -9,         /**< a blob has the wrong size, alignment, bounds or overlaps */
    SG_ERR_VALUE = -10,       /**< a blob holds a value out of range (shift, decay, threshold, delay) */
    SG_ERR_ARENA = -11,       /**< arena_bytes inconsistent, or the caller's arena too small */
    SG_ERR_UNSUPPORTED = -12, /**< valid file beyond this build's limits (e.g. > SG_MAX_CLASSES) */
    SG_ERR_TIME = -13         /**< an event or time before the current step */
} sg_status;

/** Human-readable name of a status ("SG_ERR_CRC: ..."). Never NULL. */
const char *sg_status_str(sg_status status);

/** CRC-32 (zlib / ISO-HDLC) of @p n bytes, continuing from @p crc (0 to start). */
uint32_t sg_crc32(uint32_t crc, const uint8_t *data, size_t n);

/** A parsed view of one layer-table entry; pointers point into the model buffer. */
typedef struct sg_stage {
    uint16_t kind;        /**< 1 dense, 2 conv2d */
    uint16_t flags;       /**< bit 0 OUTPUT, bit 1 DELAYS */
    uint16_t in_c, in_h, in_w;     /**< raw presynaptic geometry */
    uint16_t pool;                 /**< sum-pooling factor (1 = none) */
    uint16_t syn_c, syn_h, syn_w;  /**< synaptic input geometry after pooling */
    uint16_t out_c, out_h, out_w;  /**< neurons: channels x rows x columns */
    uint16_t kernel, stride, padding;
    uint16_t max_delay;            /**< D: the delay ring has D + 1 slots */
    uint16_t min_count;            /**< stage 0: an input's count of a step below it is dropped (<= 1: none) */
    uint32_t n_in;                 /**< syn_c syn_h syn_w */
    uint32_t n_out;                /**< out_c out_h out_w */
    const int8_t *weights;         /**< dense [out_c][n_in]; conv [out_c][syn_c][kernel][kernel] */
    const int32_t *bias;           /**< [out_c], x units */
    const int16_t *vweights;       /**< [out_c][K] bucket weights */
    const uint8_t *vshift;         /**< [out_c] right shift 0..62 */
    const int32_t *theta;          /**< [out_c] thresholds (NULL on the output stage) */
    const uint16_t *alpha;         /**< [K] Q15 decays 0..32767 */
    const uint8_t *delays;         /**< [n_in] axonal delays in steps, or NULL */
} sg_stage;

/** A parsed view of one version 2 layer-table entry (FORMAT.md §7.1); pointers into the buffer. */
typedef struct sg_qlayer {
    uint16_t kind;                  /**< 16 input, 3 conv, 4 depthwise, 5 fully connected, 6 average pool */
    uint16_t flags;                 /**< bit 0 OUTPUT */
    uint16_t in_h, in_w, in_c;      /**< input geometry (NHWC) */
    uint16_t out_h, out_w, out_c;   /**< output geometry (NHWC) */
    uint16_t kernel_h, kernel_w;    /**< input entry: slices S, window W */
    uint16_t stride_h, stride_w;
    uint16_t dilation_h, dilation_w;
    uint16_t pad_top, pad_left;
    uint16_t depth_multiplier;      /**< input entry: polarity channels P */
    uint16_t filter_c;              /**< conv: input channels per filter; FC: in_c */
    int16_t input_offset, output_offset;
    int16_t act_min, act_max;
    uint32_t n_in, n_out;           /**< elements of the input and output tensors */
    uint32_t n_rq;                  /**< requantisation entries: out_c or 1 (0 for pool/input) */
    const int8_t *weights;          /**< layer: scatter order (FORMAT.md §7.1); input entry: the LUT */
    uint32_t lut_len;               /**< input entry with S >= 1: LUT length L */
    uint32_t ring_entries;          /**< input entry with S >= 1: event-ring capacity E (FORMAT.md §7.2) */
    const int32_t *bias;            /**< [out_c] or NULL */
    const int32_t *multiplier;      /**< [n_rq] */
    const int8_t *shift;            /**< [n_rq] */
} sg_qlayer;

/** A parsed view of one version 3 layer-table entry (FORMAT.md §11.1); pointers into the buffer. */
typedef struct sg_slayer {
    uint16_t kind;                  /**< SG_SKIND_*: 1 dense, 2 conv2d, 3 sum pool, 4 identity */
    uint16_t flags;                 /**< OUTPUT, SG_SFLAG_* */
    uint16_t neuron;                /**< SG_NEURON_* */
    uint16_t reset;                 /**< SG_RESET_* */
    uint16_t in_c, in_h, in_w;      /**< input geometry (CHW) */
    uint16_t out_c, out_h, out_w;   /**< output geometry (CHW) */
    uint16_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, groups;
    uint16_t max_delay;             /**< D: the delay ring has D + 1 slots (DELAYS) */
    uint32_t n_in, n_out;           /**< elements of the input and output */
    uint32_t n_rq;                  /**< mult / shift elements: 1 or out_c */
    uint32_t n_rec;                 /**< neuron records: 1 or n_out (0: neuron none) */
    const int8_t *weights;          /**< dense [n_out][n_in]; conv OIHW; else NULL */
    const int32_t *bias;            /**< [out_c] or NULL */
    const int32_t *mult;            /**< [n_rq] */
    const uint8_t *shift;           /**< [n_rq] */
    const int8_t *rec_weights;      /**< [n_out][n_out] (RECURRENT) or NULL */
    const uint8_t *delays;          /**< [n_in] (DELAYS) or NULL */
    const int32_t *neuron_params;   /**< [n_rec][6] records or NULL */
} sg_slayer;

/** Version 1 (SpikingGamma) part of a model: the bucket count and one view per stage. */
typedef struct sg_gamma_net {
    uint16_t n_buckets;              /**< K: Gamma buckets per neuron, 1..SG_MAX_BUCKETS */
    sg_stage stages[SG_MAX_STAGES];  /**< stages 0 .. n_stages - 1 */
} sg_gamma_net;

/** Version 2 (imported int8 network) part of a model: one view per table entry. */
typedef struct sg_qnet_net {
    sg_qlayer layers[SG_MAX_STAGES]; /**< entry 0 the input, then n_stages - 1 layers */
} sg_qnet_net;

/** Version 3 (layered spiking network) part of a model: one view per table entry. */
typedef struct sg_snn_net {
    sg_slayer layers[SG_MAX_STAGES]; /**< entries 0 .. n_stages - 1 */
} sg_snn_net;

/** The part of a model only its kind reads (which member is live: sg_model_kind). */
typedef union sg_net {
    sg_gamma_net gamma; /**< SG_FORMAT_VERSION */
    sg_qnet_net qnet;   /**< SG_FORMAT_VERSION_QNET */
    sg_snn_net snn;     /**< SG_FORMAT_VERSION_SNN */
} sg_net;

/** The operations of one model kind (private to the runtime: src/core/sg_engine.h). */
typedef struct sg_engine sg_engine;

/** A validated model: header fields, its kind's operations and its kind's views over the
 *  caller's buffer. */
typedef struct sg_model {
    const uint8_t *data;  /**< the file, used in place */
    uint32_t size;
    uint32_t dt_us;
    uint32_t arena_bytes; /**< state bytes a runtime needs (FORMAT.md §4, §9) */
    uint16_t n_stages;    /**< layer-table entries */
    uint16_t in_c, in_h, in_w;
    uint16_t sensor_w, sensor_h, downsample;
    uint16_t n_classes;
    uint16_t format_version; /**< SG_FORMAT_VERSION or SG_FORMAT_VERSION_QNET: the kind */
    const char *labels;   /**< n_classes slots of SG_LABEL_SIZE bytes, NUL-terminated */
    const sg_engine *engine; /**< the kind's operations */
    sg_net net;           /**< the kind's layer views */
    uint32_t error_offset; /**< after a failed load: byte offset of the first bad field */
    const char *error_field; /**< after a failed load: its name (static string) */
} sg_model;

/**
 * Validate an .sgm file in place (FORMAT.md §5, in that order) and fill @p model.
 * @param[out] model  filled on success; on failure error_offset/error_field name the check
 * @param[in]  data   the file bytes (any alignment is accepted for validation; running
 *                    needs the 8-byte alignment the writer guarantees relative to @p data,
 *                    so pass a buffer aligned to 8 bytes)
 * @param[in]  size   bytes in @p data
 * @return SG_OK or the status of the first failing check. Never reads outside [data, data+size).
 */
sg_status sg_model_load(sg_model *model, const void *data, size_t size);

/** Label of class @p index (NUL-terminated, inside the model buffer), or NULL if out of range. */
const char *sg_model_label(const sg_model *model, uint16_t index);

/** Arena bytes the model needs (= model->arena_bytes): the caller allocates it. */
size_t sg_arena_size(const sg_model *model);

/**
 * Channels of the event counts a step takes (sg_step's counts are this x in_h x in_w,
 * channel-major): in_c of a version 1 model, the polarity channels P of an imported
 * network with event-count input, 0 for one with tensor input (sg_step_tensor) or for a
 * model that is not loaded.
 */
uint16_t sg_model_count_channels(const sg_model *model);

/** The model's kind: its format_version (SG_FORMAT_VERSION, SG_FORMAT_VERSION_QNET), 0 if
 *  @p model is NULL or not loaded. */
uint16_t sg_model_kind(const sg_model *model);

/**
 * Steps of input one output depends on as a whole: W, the window of an imported network
 * with event-count input (FORMAT.md §7.2), else 1. Scores start at step W - 1 at the
 * earliest (FORMAT.md §8). 0 if @p model is NULL or not loaded.
 */
uint32_t sg_model_window(const sg_model *model);

/** One layer's size, for cost and size reports (sg_model_layer). */
typedef struct sg_layer_info {
    uint16_t kind;   /**< version 1: SG_KIND_DENSE / SG_KIND_CONV2D; version 2: SG_QKIND_*; version 3: SG_SKIND_* (sg_format.h) */
    uint16_t flags;  /**< bit 0: the output layer */
    uint32_t n_out;  /**< neurons (version 1) or output tensor elements (version 2) */
    uint64_t fan_in; /**< weights each output sums in a dense evaluation (every kernel tap,
                          padding included; 0 for pooling): n_out x fan_in MACs per frame */
} sg_layer_info;

/** Layers with weights or state: the stages of a version 1 model, the entries after the
 *  input entry of a version 2 one (the last is the output layer). 0 if not loaded. */
uint16_t sg_model_n_layers(const sg_model *model);

/**
 * Size of layer @p index (0 .. sg_model_n_layers - 1).
 * @return SG_ERR_ARG on NULL, an unloaded model or @p index out of range.
 */
sg_status sg_model_layer(const sg_model *model, uint16_t index, sg_layer_info *info);

/** Counters since the last sg_runtime_reset(). */
typedef struct sg_stats {
    uint64_t steps;                 /**< completed time steps */
    uint64_t events_in;             /**< input events accepted */
    uint64_t events_dropped;        /**< input events outside the sensor or the pooled grid */
    uint64_t synops;                /**< synaptic operations: weights added into buckets (v2: accumulators) */
    uint64_t spikes[SG_MAX_STAGES]; /**< spikes emitted per hidden stage (v2: int8 output
                                         deltas sent per table entry, entry 0 = the input tensor;
                                         v3: nonzero activations per entry, the output's included) */
} sg_stats;

/** Version 1 state: pointers into the arena (FORMAT.md §4). */
typedef struct sg_gamma_state {
    int32_t *z[SG_MAX_STAGES];    /**< [K][n_out] bucket states per stage */
    int32_t *enc[SG_MAX_STAGES];  /**< [n_out] encoder states per hidden stage */
    int32_t *ring[SG_MAX_STAGES]; /**< [(D+1)][n_in] delay rings (a bit per input: SG_FLAG_SPIKE_RING), or NULL */
    uint8_t *counts;              /**< [stage 0's raw inputs] events of the open step, saturating at 255
                                       (stage 0's min_count >= 2), or NULL */
    uint32_t counted;             /**< events were counted into @c counts in the open step */
} sg_gamma_state;

/** Version 2 state: pointers into the arena (FORMAT.md §9) and the event ring's cursors. */
typedef struct sg_qnet_state {
    int8_t *x;                        /**< [n_in] the int8 input tensor */
    uint16_t *open;                   /**< [cells] the open step's counts, or NULL (S = 0) */
    uint32_t *slice;                  /**< [S][cells] slice sums, or NULL */
    uint32_t *ring_start;             /**< [W + 1] per step slot: its first ring entry */
    uint32_t *ring_count;             /**< [W + 1] per step slot: its ring entries */
    uint32_t *ring;                   /**< [E] event ring: cell | count << 16, the last W + 1 steps */
    uint32_t ring_head;               /**< where the next entry goes */
    uint32_t ring_held;               /**< entries held by the steps still in the window */
    uint64_t ring_lost;               /**< events lost to a full ring since reset (also in events_dropped) */
    int32_t *acc[SG_MAX_STAGES];      /**< [n_out] per layer (index = table entry) */
    int8_t *q[SG_MAX_STAGES];         /**< [n_out] per layer */
    uint8_t *flag[SG_MAX_STAGES];     /**< [n_out] per layer: run start already in touched */
    uint32_t *touched[SG_MAX_STAGES]; /**< [n_out / run] per layer: runs the step's deltas reached */
    uint32_t n_touched[SG_MAX_STAGES];
} sg_qnet_state;

/** Version 3 state: pointers into the arena (FORMAT.md §14). */
typedef struct sg_snn_state {
    uint16_t *counts;              /**< [cells] counts of the open step */
    uint8_t *x;                    /**< [cells] input activations of entry 0 */
    uint8_t *act[SG_MAX_STAGES];   /**< [n_out] activations a_e per entry */
    int32_t *v[SG_MAX_STAGES];     /**< [n_out] membranes (CubaLIF: then [n_out] currents), or NULL */
    uint8_t *ring[SG_MAX_STAGES];  /**< [(D+1)][n_in] delay rings, or NULL */
    int32_t *acc;                  /**< [n_max] accumulators (scratch) */
    int32_t *out;                  /**< [n_classes] logits of the step */
} sg_snn_state;

/** The part of a runtime only its model's kind reads. */
typedef union sg_state {
    sg_gamma_state gamma; /**< SG_FORMAT_VERSION */
    sg_qnet_state qnet;   /**< SG_FORMAT_VERSION_QNET */
    sg_snn_state snn;     /**< SG_FORMAT_VERSION_SNN */
} sg_state;

/** Runtime state; the caller owns the struct and the arena. Fields are read-only for users
 *  (sg_step_index, sg_logits, sg_scores, sg_get_stats read them). */
typedef struct sg_runtime {
    const sg_model *model;
    uint8_t *arena;
    size_t arena_size;
    size_t arena_used;
    int64_t t0_us;                 /**< time origin (start of step 0) */
    uint32_t step;                 /**< index of the current (open or next) step */
    uint8_t has_origin;            /**< t0_us is set */
    uint8_t step_open;             /**< the step `step` has begun: input goes into it */
    uint32_t score_start;          /**< first step summed into score[] (sg_score_from) */
    uint32_t first_scored;         /**< sg_model_window - 1: no earlier step is scored */
    int32_t logits[SG_MAX_CLASSES];/**< logits of the last completed step */
    int64_t score[SG_MAX_CLASSES]; /**< sum of logits over steps >= max(score_start, first_scored) */
    sg_state state;                /**< the kind's state */
    sg_stats stats;
} sg_runtime;

/**
 * Bind a runtime to a loaded model and an arena, and reset it.
 * @param[in] arena       caller memory, 4-byte aligned, at least sg_arena_size(model) bytes
 * @return SG_ERR_ARENA if the arena is too small, SG_ERR_ARG on NULL or misalignment.
 */
sg_status sg_runtime_init(sg_runtime *rt, const sg_model *model, void *arena, size_t arena_size);

/** Zero every state, the scores and the statistics; forget the time origin. */
sg_status sg_runtime_reset(sg_runtime *rt);

/** Bytes of the arena in use (equals sg_arena_size of the bound model). */
size_t sg_arena_used(const sg_runtime *rt);

/** Set the time origin (start of step 0) before the first event; SG_ERR_TIME once set. */
sg_status sg_set_origin(sg_runtime *rt, int64_t t0_us);

/** Event as fed to sg_feed: sensor coordinates, polarity (1 ON, 0 OFF), absolute µs. */
typedef struct sg_event {
    int64_t t_us;
    uint16_t x, y;
    uint8_t p;
} sg_event;

/**
 * Feed events in time order. Steps that end before an event are completed first; the
 * first event sets the origin if none is set. Events outside the sensor are counted in
 * stats.events_dropped. Returns SG_ERR_TIME (and stops) at an event earlier than the
 * current step.
 */
sg_status sg_feed(sg_runtime *rt, const sg_event *events, size_t n);

/** Complete every step that ends at or before @p t_us (needs an origin). */
sg_status sg_advance_to(sg_runtime *rt, int64_t t_us);

/**
 * Grain 2: one whole step from a dense frame of input event counts
 * (@p counts: in_c x in_h x in_w, channel-major, or NULL for no input; version 2 event-count
 * models: P x in_h x in_w, the cells of FORMAT.md §7.2).
 */
sg_status sg_step(sg_runtime *rt, const uint16_t *counts);

/**
 * Version 2 models with tensor input (S = 0): one whole step from the int8 input tensor
 * @p x (in_h x in_w x in_c, NHWC). SG_ERR_UNSUPPORTED for event-count models and
 * version 1; sg_feed, sg_step and sg_advance_to are SG_ERR_UNSUPPORTED for tensor-input models.
 */
sg_status sg_step_tensor(sg_runtime *rt, const int8_t *x);

/** Logits of the last completed step (n_classes int32 in the output stage's x unit). */
const int32_t *sg_logits(const sg_runtime *rt);

/** Scores: n_classes int64, the logits summed from step max(score_start, window - 1) on. */
const int64_t *sg_scores(const sg_runtime *rt);

/** Index of the current step (the open one, or the next to run); 0 if @p rt is NULL. */
uint32_t sg_step_index(const sg_runtime *rt);

/** Running prediction: the class with the largest score (smallest index on ties), -1 before any step. */
int sg_prediction(const sg_runtime *rt);

/** Sum logits into the scores only from step @p step on (default 0); also clears the scores. */
sg_status sg_score_from(sg_runtime *rt, uint32_t step);

/** Copy of the statistics. */
sg_status sg_get_stats(const sg_runtime *rt, sg_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* SG_RUNTIME_H */
