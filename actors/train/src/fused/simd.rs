//! The fused kernels compiled for more than the baseline x86-64 (SSE2): each is built three
//! times, for AVX-512, for AVX2 with FMA and for the baseline, and the best one this CPU runs is
//! picked at run time (so one binary serves every x86-64 machine). The code is the same and Rust
//! never fuses a multiply and an add or reorders a sum, so every version computes the same bits:
//! a rerun on another CPU of the class reproduces a result exactly.
//!
//! `SPORED_SIMD=baseline|avx2|avx512` caps the choice (benchmarks and tests compare them).

use std::sync::OnceLock;

/// The instruction sets a kernel can be compiled for, best last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Baseline,
    Avx2,
    Avx512,
}

/// The best level this CPU runs, capped by `SPORED_SIMD`.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("SPORED_SIMD").as_deref() {
            Ok("baseline") => Level::Baseline,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        detected().min(cap)
    })
}

fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
        {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Defines a kernel function whose body is compiled for every [`Level`] and dispatched at run
/// time (see the module's notes).
macro_rules! multiversion {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$attr])*
        fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            fn avx512($($arg: $ty),*) -> $ret {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            fn avx2($($arg: $ty),*) -> $ret {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::fused::simd::level() {
                // SAFETY: `level` found the features these versions are compiled for on this CPU.
                $crate::fused::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                $crate::fused::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                $crate::fused::simd::Level::Baseline => {}
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Distribution, Int, Tensor};

    const PROBE: &str = "SPORED_SIMD_PROBE";

    /// A hash of the bits of fused attention, GELU and the loss, forward and backward, on fixed
    /// inputs, computed at this process's level.
    fn probe() -> u64 {
        type Ad = Autodiff<Flex>;
        let device = Default::default();
        <Flex as Backend>::seed(&device, 11);
        let input = |shape: [usize; 3]| {
            let data = Tensor::<Flex, 3>::random(shape, Distribution::Normal(0.0, 1.0), &device)
                .into_data();
            Tensor::<Ad, 3>::from_data(data, &device).require_grad()
        };
        let (q, k, v) = (input([2, 33, 48]), input([2, 33, 48]), input([2, 33, 48]));
        let y = super::super::gelu::gelu(super::super::attention::causal(
            q.clone(),
            k.clone(),
            v.clone(),
            3,
        ));
        let logits = y.reshape([66, 48]);
        let targets = Tensor::<Ad, 1, Int>::from_data(
            (0..66)
                .map(|i| (i * 7 % 48) as i64)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        );
        let loss = super::super::nll::nll(logits, targets).sum();
        let grads = loss.clone().backward();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |values: Vec<f32>| {
            for x in values {
                hash = (hash ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3);
            }
        };
        eat(loss.into_data().to_vec().unwrap());
        for x in [&q, &k, &v] {
            eat(x.grad(&grads).unwrap().into_data().to_vec().unwrap());
        }
        hash
    }

    /// Every level this CPU has computes the same bits (so reruns on CPUs of one class, which
    /// may pick different levels, reproduce a record exactly): this test runs itself once per
    /// level in a child process, each printing its probe.
    #[test]
    fn every_level_computes_the_same_bits() {
        if std::env::var(PROBE).is_ok() {
            println!("probe {:016x} at {:?}", probe(), super::level());
            return;
        }
        let me = std::env::current_exe().unwrap();
        let mut seen = Vec::new();
        for level in ["baseline", "avx2", "avx512"] {
            let out = std::process::Command::new(&me)
                .args([
                    "--exact",
                    "fused::simd::tests::every_level_computes_the_same_bits",
                ])
                .args(["--nocapture", "--test-threads", "1"])
                .env(PROBE, "1")
                .env("SPORED_SIMD", level)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let at = text
                .find("probe ")
                .unwrap_or_else(|| panic!("no probe at {level}: {text}"));
            seen.push(text[at..].lines().next().unwrap_or_default().to_string());
        }
        eprintln!("{seen:?}");
        let hashes: Vec<&str> = seen.iter().map(|l| &l[6..22]).collect();
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    }
}
