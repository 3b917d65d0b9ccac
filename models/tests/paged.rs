//! Paged attention equals contiguous attention, for GQA-shaped (separate K and V) and
//! MLA-shaped (values are the latent prefix of the key rows) caches, on the streaming path and the
//! gather path, before and after a copy-on-write fork.

use burn::backend::Flex;
use burn::tensor::{backend::Backend, Distribution, Tensor};
use infermark_models::diff::max_abs_diff;
use infermark_models::kernels::{grouped_attention_generic, Visibility};
use infermark_models::kv_cache::{
    stored_bytes, CacheLayout, ContiguousKv, KvCache, PagedCache, Values,
};

type B = Flex;
const ATOL: f32 = 1e-5;

fn dev() -> burn::backend::flex::FlexDevice {
    Default::default()
}

fn rand<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    B::seed(&dev(), seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev())
}

fn max_diff(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (
        a.into_data().to_vec::<f32>().unwrap(),
        b.into_data().to_vec::<f32>().unwrap(),
    );
    max_abs_diff(&a, &b).unwrap()
}

fn layout(heads: usize, k_width: usize, values: Values) -> CacheLayout {
    CacheLayout {
        heads,
        k_width,
        values,
    }
}

/// Token counts appended by most checks: 39 tokens, blocks not in order.
const SHORT: [usize; 4] = [5, 1, 31, 2];

/// Appends chunks of tokens (`lens`), then checks paged attention against the contiguous tensors.
fn check(values: Values, heads: usize, wk: usize, rows: usize, block: usize, lens: &[usize]) {
    let mut cache = PagedCache::<B>::new(64, block, layout(heads, wk, values), &dev()).unwrap();
    let wv = match values {
        Values::Separate(w) | Values::PrefixOfKeys(w) => w,
    };
    // A second sequence interleaved with the first, so blocks are not in order.
    let (s, other) = (cache.add_sequence().unwrap(), cache.add_sequence().unwrap());
    let (mut ks, mut vs) = (Vec::new(), Vec::new());
    for (i, &n) in lens.iter().enumerate() {
        let k = rand([heads, n, wk], 10 + i as u64);
        let v = rand([heads, n, wv], 20 + i as u64);
        let sep = matches!(values, Values::Separate(_));
        cache.append(s, k.clone(), sep.then(|| v.clone())).unwrap();
        cache
            .append(
                other,
                rand([heads, 3, wk], 30 + i as u64),
                sep.then(|| rand([heads, 3, wv], 40)),
            )
            .unwrap();
        ks.push(k.clone());
        vs.push(if sep { v } else { k.narrow(2, 0, wv) });
    }
    let k = Tensor::cat(ks, 1).unsqueeze_dim::<4>(0);
    let v = Tensor::cat(vs, 1).unsqueeze_dim::<4>(0);
    let q = rand([1, heads, rows, wk], 99);
    for vis in [Visibility::All, Visibility::Causal { s: 2, past: 30 }] {
        let want = grouped_attention_generic(q.clone(), k.clone(), v.clone(), vis, 0.2);
        let got = cache.attend(q.clone(), s, vis, 0.2).unwrap();
        let d = max_diff(got, want.clone());
        assert!(
            d < ATOL,
            "{values:?} rows {rows} block {block} {vis:?}: {d}"
        );
        let (gk, gv) = cache.gather(s).unwrap();
        assert_eq!(
            max_diff(gk, k.clone()),
            0.0,
            "gathered keys are the appended keys"
        );
        assert_eq!(
            max_diff(gv, v.clone()),
            0.0,
            "gathered values are the appended values"
        );
    }
}

#[test]
fn paged_equals_contiguous_for_gqa_on_the_streaming_path() {
    for block in [8, 16] {
        check(Values::Separate(16), 2, 16, 4, block, &SHORT);
    }
    // Long enough to be split into context chunks: on a multi-core pool a chunk starts mid-block
    // (700 / 2 = 350), so the kernel's 8-row groups straddle cache blocks there.
    check(Values::Separate(16), 2, 16, 4, 16, &[5, 1, 331, 2, 361]);
}

#[test]
fn paged_equals_contiguous_for_gqa_on_the_gather_path() {
    check(Values::Separate(16), 2, 16, 24, 8, &SHORT);
}

#[test]
fn paged_equals_contiguous_for_mla_latent_rows() {
    // Absorbed MLA: one "head" of [c_KV | k_R] rows, all query heads as rows, values = c_KV.
    check(Values::PrefixOfKeys(16), 1, 20, 4, 8, &SHORT);
    check(Values::PrefixOfKeys(16), 1, 20, 32, 16, &SHORT);
}

#[test]
fn a_write_after_fork_leaves_the_parent_unchanged() {
    let mut cache = PagedCache::<B>::new(16, 8, layout(2, 8, Values::Separate(8)), &dev()).unwrap();
    let parent = cache.add_sequence().unwrap();
    cache
        .append(parent, rand([2, 12, 8], 1), Some(rand([2, 12, 8], 2)))
        .unwrap();
    let q = rand([1, 2, 4, 8], 3);
    let before = cache
        .attend(q.clone(), parent, Visibility::All, 0.3)
        .unwrap();
    let child = cache.fork(parent).unwrap();
    cache
        .append(child, rand([2, 3, 8], 4), Some(rand([2, 3, 8], 5)))
        .unwrap();
    let after = cache
        .attend(q.clone(), parent, Visibility::All, 0.3)
        .unwrap();
    assert_eq!(max_diff(before, after), 0.0);
    // The child sees the shared prefix and its own tokens.
    let (pk, _) = cache.gather(parent).unwrap();
    let (ck, _) = cache.gather(child).unwrap();
    assert_eq!(ck.dims(), [1, 2, 15, 8]);
    assert_eq!(max_diff(ck.narrow(2, 0, 12), pk), 0.0);
    cache.free(parent).unwrap();
    cache.free(child).unwrap();
    assert_eq!(cache.pool.free_blocks(), 16);
}

#[test]
fn exhausting_the_pool_is_an_error_and_leaves_the_cache_unchanged() {
    let mut cache = PagedCache::<B>::new(2, 8, layout(1, 4, Values::Separate(4)), &dev()).unwrap();
    let s = cache.add_sequence().unwrap();
    cache
        .append(s, rand([1, 10, 4], 1), Some(rand([1, 10, 4], 2)))
        .unwrap();
    assert!(cache
        .append(s, rand([1, 7, 4], 3), Some(rand([1, 7, 4], 4)))
        .is_err());
    assert_eq!(cache.len(s).unwrap(), 10);
    assert_eq!(cache.bytes_reserved(), 2 * 8 * 8 * 4);
    assert_eq!(cache.bytes_used(), 10 * 8 * 4);
}

#[test]
fn batched_attention_equals_one_sequence_at_a_time() {
    use infermark_models::kernels::AttentionBackend;
    let mut cache =
        PagedCache::<B>::new(64, 8, layout(2, 16, Values::Separate(16)), &dev()).unwrap();
    let seqs: Vec<_> = (0..3).map(|_| cache.add_sequence().unwrap()).collect();
    let (mut ks, mut vs) = (Vec::new(), Vec::new());
    for (i, &s) in seqs.iter().enumerate() {
        let n = 5 + 11 * i;
        let (k, v) = (
            rand([2, n, 16], 50 + i as u64),
            rand([2, n, 16], 60 + i as u64),
        );
        cache.append(s, k.clone(), Some(v.clone())).unwrap();
        ks.push(k.unsqueeze_dim::<4>(0));
        vs.push(v.unsqueeze_dim::<4>(0));
    }
    let q = rand([3, 2, 4, 16], 70);
    let paged = cache.attend_batch(q.clone(), &seqs, 0.25).unwrap();
    let contiguous = <B as AttentionBackend>::grouped_attention_batch(q.clone(), &ks, &vs, 0.25);
    for i in 0..3 {
        let one = grouped_attention_generic(
            q.clone().narrow(0, i, 1),
            ks[i].clone(),
            vs[i].clone(),
            Visibility::All,
            0.25,
        );
        assert!(
            max_diff(paged.clone().narrow(0, i, 1), one.clone()) < ATOL,
            "paged sequence {i}"
        );
        assert!(
            max_diff(contiguous.clone().narrow(0, i, 1), one) < ATOL,
            "contiguous sequence {i}"
        );
    }
}

/// Inputs for [`drive`], drawn once so both caches see the same tensors (the backend's random
/// generator is shared by tests running in parallel).
struct Inputs {
    chunks: Vec<(Tensor<B, 3>, Option<Tensor<B, 3>>)>,
    q: Tensor<B, 4>,
}

fn inputs(mla: bool) -> Inputs {
    let (heads, wk, wv) = if mla { (1, 20, 16) } else { (2, 16, 16) };
    let chunks = [(21, 1), (3, 2), (5, 3)]
        .into_iter()
        .map(|(n, seed)| {
            (
                rand([heads, n, wk], seed),
                (!mla).then(|| rand([heads, n, wv], seed + 100)),
            )
        })
        .collect();
    Inputs {
        chunks,
        q: rand([1, heads, 4, wk], 9),
    }
}

/// The same operations through the `KvCache` trait on both implementations.
fn drive(cache: &mut dyn KvCache<B>, x: &Inputs) -> Vec<Tensor<B, 4>> {
    let a = cache.add_sequence().unwrap();
    let (k, v) = x.chunks[0].clone();
    cache.append(a, k, v).unwrap();
    let b = cache.fork(a).unwrap();
    let (k, v) = x.chunks[1].clone();
    cache.append(b, k, v).unwrap();
    let (k, v) = x.chunks[2].clone();
    cache.append(a, k, v).unwrap();
    cache.truncate(a, 24).unwrap();
    assert_eq!((cache.len(a).unwrap(), cache.len(b).unwrap()), (24, 24));
    let out = vec![
        cache.attend(x.q.clone(), a, Visibility::All, 0.3).unwrap(),
        cache.attend(x.q.clone(), b, Visibility::All, 0.3).unwrap(),
    ];
    cache.free(a).unwrap();
    cache.free(b).unwrap();
    assert_eq!((cache.bytes_reserved(), cache.bytes_used()), (0, 0));
    out
}

#[test]
fn both_caches_behave_alike_through_the_kv_cache_trait() {
    for mla in [false, true] {
        let (heads, wk, wv) = if mla { (1, 20, 16) } else { (2, 16, 16) };
        let values = if mla {
            Values::PrefixOfKeys(wv)
        } else {
            Values::Separate(wv)
        };
        let mut paged = PagedCache::<B>::new(32, 8, layout(heads, wk, values), &dev()).unwrap();
        let mut contiguous = ContiguousKv::<B>::new(4, 64, layout(heads, wk, values), &dev());
        let x = inputs(mla);
        let (p, c) = (drive(&mut paged, &x), drive(&mut contiguous, &x));
        for (a, b) in p.into_iter().zip(c) {
            assert!(max_diff(a, b) < ATOL, "mla {mla}");
        }
    }
}

#[test]
fn contiguous_reserves_max_len_per_sequence_and_refuses_past_it() {
    let mut c = ContiguousKv::<B>::new(2, 32, layout(2, 8, Values::Separate(8)), &dev());
    let s = c.add_sequence().unwrap();
    c.append(s, rand([2, 5, 8], 1), Some(rand([2, 5, 8], 2)))
        .unwrap();
    assert_eq!(c.bytes_reserved(), 32 * 2 * 16 * 4);
    assert_eq!(c.bytes_used(), 5 * 2 * 16 * 4);
    assert!(c
        .append(s, rand([2, 28, 8], 3), Some(rand([2, 28, 8], 4)))
        .is_err());
    c.add_sequence().unwrap();
    assert!(c.add_sequence().is_err(), "only two reservations fit");
}

#[test]
fn stored_rows_are_what_was_written_and_their_bytes_are_the_closed_form() {
    // (values, heads, key width, closed-form f32 bytes per token)
    for (values, heads, wk, per_token) in [
        // GQA: K and V, 2 · n_kv · d_head · 4.
        (Values::Separate(16), 2, 16, 2 * 2 * 16 * 4),
        // MLA: one latent row (d_c + d_rope) · 4, values its prefix.
        (Values::PrefixOfKeys(12), 1, 20, 20 * 4),
    ] {
        let l = layout(heads, wk, values);
        let mut paged = PagedCache::<B>::new(4, 8, l, &dev()).unwrap();
        let mut contiguous = ContiguousKv::<B>::new(2, 32, l, &dev());
        let caches: [&mut dyn KvCache<B>; 2] = [&mut paged, &mut contiguous];
        for cache in caches {
            let s = cache.add_sequence().unwrap();
            let k = rand([heads, 9, wk], 1);
            let v = match values {
                Values::Separate(w) => Some(rand([heads, 9, w], 2)),
                Values::PrefixOfKeys(_) => None,
            };
            cache.append(s, k.clone(), v.clone()).unwrap();
            let (kb, vb) = cache.stored(s).unwrap();
            assert_eq!(max_diff(kb, k.unsqueeze_dim(0)), 0.0);
            assert_eq!(vb.is_some(), v.is_some());
            if let (Some(vb), Some(v)) = (vb, v) {
                assert_eq!(max_diff(vb, v.unsqueeze_dim(0)), 0.0);
            }
            assert_eq!(stored_bytes(cache, s).unwrap(), 9 * per_token, "{values:?}");
        }
    }
}
