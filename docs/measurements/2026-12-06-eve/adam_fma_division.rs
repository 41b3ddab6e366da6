//! Adam's update with its division done by fused multiply-adds instead of the divider, with
//! the same bits: is it faster? A stand-alone program (not part of the workspace), kept as the
//! source of the figures in the README's "What is left" (Adam). Run it in a scratch crate:
//!
//!     cargo new adamfma && cp adam_fma_division.rs adamfma/src/main.rs && cd adamfma
//!     RUSTFLAGS="-C target-cpu=native" cargo run --release      # needs AVX-512 (avx512f, vl)
//!
//! It checks (1) the reciprocal from an integer estimate and four Newton steps, the last being
//! Markstein's correction, against `1 / b` over every significand at three exponents (the theorem
//! allows a miss only for the all-ones significand); (2) the division `q = q0 + (a - b q0) y`
//! against `a / b` on 200 million random pairs in the range the loops use it for; (3) three Adam
//! loops over 2,048, 16,384 and 200,704 parameters: the divider's (`a / b`, as in
//! `backprop_core::optim`), the same with the division from portable `mul_add` (16 lanes at a
//! time, falling back to `a / b` for a chunk with a lane out of [2^-60, 2^60]), and the same with
//! AVX-512 intrinsics (`rcp14` and two Newton steps); all three must end with the same bits, then
//! each is timed (median and fastest of 7, ns per parameter).

use std::time::Instant;

#[inline(always)]
fn recip_rn(b: f32) -> f32 {
    let mut y = f32::from_bits(0x7EF3_11C3u32.wrapping_sub(b.to_bits()));
    for _ in 0..4 {
        let e = (-b).mul_add(y, 1.0);
        y = y.mul_add(e, y);
    }
    y
}

#[inline(always)]
fn div_rn(a: f32, b: f32) -> f32 {
    let y = recip_rn(b);
    div_with(a, b, y)
}
#[inline(always)]
fn div_with(a: f32, b: f32, y: f32) -> f32 {
    let q0 = a * y;
    let r = (-b).mul_add(q0, a);
    r.mul_add(y, q0).copysign(a)
}

#[derive(Clone, Copy)]
struct P { step_size: f32, c: f32, omb1: f32, b2: f32, omb2: f32, eps: f32, decay: f32 }

#[inline(never)]
fn adam_hw(ps: &mut [f32], gs: &[f32], ms: &mut [f32], vs: &mut [f32], k: P) {
    for (((p, &g), m), v) in ps.iter_mut().zip(gs).zip(ms).zip(vs) {
        let g = g + k.decay * *p;
        *m += k.omb1 * (g - *m);
        *v = *v * k.b2 + k.omb2 * g * g;
        let d = v.sqrt() * k.c + k.eps;
        *p -= k.step_size * (*m / d);
    }
}

const LO: u32 = 0x2180_0000; // 2^-60
const HI: u32 = 0x5d80_0000; // 2^60
#[inline(always)]
fn in_range(x: f32) -> bool { let a = x.to_bits() & 0x7fff_ffff; a.wrapping_sub(LO) < HI - LO }

#[inline(never)]
fn adam_fma(ps: &mut [f32], gs: &[f32], ms: &mut [f32], vs: &mut [f32], k: P) {
    const W: usize = 16;
    let n = ps.len() / W * W;
    let (ph, pt) = ps.split_at_mut(n);
    let (gh, gt) = gs.split_at(n);
    let (mh, mt) = ms.split_at_mut(n);
    let (vh, vt) = vs.split_at_mut(n);
    for (((p, g), m), v) in ph.chunks_exact_mut(W).zip(gh.chunks_exact(W)).zip(mh.chunks_exact_mut(W)).zip(vh.chunks_exact_mut(W)) {
        let p: &mut [f32; W] = p.try_into().unwrap();
        let g: &[f32; W] = g.try_into().unwrap();
        let m: &mut [f32; W] = m.try_into().unwrap();
        let v: &mut [f32; W] = v.try_into().unwrap();
        let mut d = [0f32; W];
        let mut bad = 0u32;
        for i in 0..W {
            let gi = g[i] + k.decay * p[i];
            m[i] += k.omb1 * (gi - m[i]);
            v[i] = v[i] * k.b2 + k.omb2 * gi * gi;
            d[i] = v[i].sqrt() * k.c + k.eps;
            bad |= (!(in_range(d[i]) && (in_range(m[i]) || m[i] == 0.0))) as u32;
        }
        let mut q = [0f32; W];
        if bad == 0 {
            for i in 0..W { q[i] = div_rn(m[i], d[i]); }
        } else {
            for i in 0..W { q[i] = m[i] / d[i]; }
        }
        for i in 0..W { p[i] -= k.step_size * q[i]; }
    }
    adam_hw(pt, gt, mt, vt, k);
}

#[inline(never)]
fn adam_avx512(ps: &mut [f32], gs: &[f32], ms: &mut [f32], vs: &mut [f32], k: P) {
    use std::arch::x86_64::*;
    const W: usize = 16;
    let n = ps.len() / W * W;
    unsafe {
        let decay = _mm512_set1_ps(k.decay);
        let omb1 = _mm512_set1_ps(k.omb1);
        let b2 = _mm512_set1_ps(k.b2);
        let omb2 = _mm512_set1_ps(k.omb2);
        let c = _mm512_set1_ps(k.c);
        let eps = _mm512_set1_ps(k.eps);
        let step = _mm512_set1_ps(k.step_size);
        let one = _mm512_set1_ps(1.0);
        let absmask = _mm512_set1_epi32(0x7fff_ffff);
        let lo = _mm512_set1_epi32(LO as i32);
        let span = _mm512_set1_epi32((HI - LO) as i32);
        let mut i = 0;
        while i < n {
            let p = _mm512_loadu_ps(ps.as_ptr().add(i));
            let g = _mm512_add_ps(_mm512_loadu_ps(gs.as_ptr().add(i)), _mm512_mul_ps(decay, p));
            let m0 = _mm512_loadu_ps(ms.as_ptr().add(i));
            let m = _mm512_add_ps(m0, _mm512_mul_ps(omb1, _mm512_sub_ps(g, m0)));
            let v0 = _mm512_loadu_ps(vs.as_ptr().add(i));
            let v = _mm512_add_ps(_mm512_mul_ps(v0, b2), _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
            _mm512_storeu_ps(ms.as_mut_ptr().add(i), m);
            _mm512_storeu_ps(vs.as_mut_ptr().add(i), v);
            let d = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), c), eps);
            // range: d and m (or m == 0)
            let dbits = _mm512_and_si512(_mm512_castps_si512(d), absmask);
            let mbits = _mm512_and_si512(_mm512_castps_si512(m), absmask);
            let d_ok = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(dbits, lo), span);
            let m_ok = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(mbits, lo), span) | _mm512_cmpeq_epi32_mask(mbits, _mm512_setzero_si512());
            let q = if (d_ok & m_ok) == 0xffff {
                let mut y = _mm512_rcp14_ps(d);
                let e = _mm512_fnmadd_ps(d, y, one);
                y = _mm512_fmadd_ps(y, e, y);
                let e = _mm512_fnmadd_ps(d, y, one);
                y = _mm512_fmadd_ps(y, e, y);
                let q0 = _mm512_mul_ps(m, y);
                let r = _mm512_fnmadd_ps(d, q0, m);
                let q = _mm512_fmadd_ps(r, y, q0);
                // copysign(q, m)
                _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(q), _mm512_castps_si512(m), absmask, 0xE4))
            } else {
                _mm512_div_ps(m, d)
            };
            _mm512_storeu_ps(ps.as_mut_ptr().add(i), _mm512_sub_ps(p, _mm512_mul_ps(step, q)));
            i += W;
        }
    }
    adam_hw(&mut ps[n..], &gs[n..], &mut ms[n..], &mut vs[n..], k);
}

fn main() {
    // 1. reciprocal exhaustive over significands, several exponents
    let mut fails = 0u64;
    for e in [127u32 - 50, 127, 127 + 40] {
        for s in 0..(1u32 << 23) {
            let b = f32::from_bits((e << 23) | s);
            if recip_rn(b) != 1.0 / b { fails += 1; if fails < 5 { println!("recip fail {b:e} {:x}", b.to_bits()); } }
        }
    }
    println!("recip fails {fails}");
    // 2. random division
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
    let mut dfails = 0u64;
    let t = Instant::now();
    for _ in 0..200_000_000u64 {
        let r = next();
        let a = f32::from_bits(((r as u32) & 0x807f_ffff) | ((((r >> 32) as u32 % 100) + 77) << 23));
        let b = f32::from_bits(((r >> 40) as u32 & 0x007f_ffff) | ((((r >> 63) as u32 * 30) + ((r>>33) as u32 % 60) + 80) << 23));
        if div_rn(a, b).to_bits() != (a / b).to_bits() { dfails += 1; if dfails < 5 { println!("div fail {a:e} {b:e}"); } }
    }
    println!("div fails {dfails} in {:?}", t.elapsed());
    // 3. timing + equality
    for n in [2048usize, 16384, 200704] {
        let g: Vec<f32> = (0..n).map(|i| ((i * 31 % 13) as f32) * 1e-3 - 6e-3).collect();
        let k = P { step_size: 1e-3 / 0.1, c: 1.0 / 0.03f32.sqrt(), omb1: 0.1, b2: 0.999, omb2: 0.001, eps: 1e-8, decay: 0.0 };
        let mut a = (vec![0.01f32; n], vec![0f32; n], vec![0f32; n]);
        let mut b = a.clone();
        let mut c = a.clone();
        for _ in 0..50 {
            adam_hw(&mut a.0, &g, &mut a.1, &mut a.2, k);
            adam_fma(&mut b.0, &g, &mut b.1, &mut b.2, k);
            adam_avx512(&mut c.0, &g, &mut c.1, &mut c.2, k);
        }
        let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same(&a.0, &b.0) && same(&a.0, &c.0), "the loops differ");
        let reps = (1 << 23) / n;
        for (name, f) in [("hw", adam_hw as fn(&mut [f32], &[f32], &mut [f32], &mut [f32], P)), ("portable", adam_fma), ("avx512", adam_avx512)] {
            let mut ts = vec![];
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..reps { f(&mut a.0, &g, &mut a.1, &mut a.2, k); }
                ts.push(t.elapsed().as_secs_f64() * 1e9 / (reps * n) as f64);
            }
            ts.sort_by(f64::total_cmp);
            println!("{n:>7} {name:>8} median {:.3} min {:.3} ns/param", ts[3], ts[0]);
        }
    }
}
