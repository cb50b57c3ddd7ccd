//! Hardware classes (reference §f.1) and rerun tolerances (§f.2).
//!
//! [`reference_gpu_model`] is the reference's `normalize_gpu_model`, byte for byte, and what a
//! spored GPU node writes into `gpu_model`: a spored record and a reference record made on the
//! same card must be one class, or neither node's reruns could verify the other's. (So a real
//! "NVIDIA H100 80GB HBM3" is the class `NVIDIA_H100_80GB_HBM3`, as in the reference, whose
//! H100 class only takes names that start with "H100".)

/// The reference's `normalize_gpu_model`.
pub fn reference_gpu_model(name: &str) -> String {
    let s = name.trim();
    if s.is_empty() {
        return "UNKNOWN".into();
    }
    let mut norm = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c == '-' || c == ' ' { '_' } else { c };
        if c == '_' && norm.ends_with('_') {
            continue;
        }
        norm.extend(c.to_uppercase());
    }
    if norm.contains("MPS") || norm.contains("APPLE") {
        return "APPLE_MPS".into();
    }
    if norm == "CPU" || norm == "UNKNOWN" {
        return norm;
    }
    if norm.starts_with("H100") {
        return "H100".into();
    }
    if norm.starts_with("A100") {
        return "A100".into();
    }
    for prefix in ["RTX", "GTX"] {
        if let Some(digits) = card_number(&norm, prefix) {
            return format!("{prefix}_{digits}");
        }
    }
    norm
}

/// First `RTX_?\d{3,4}` (or GTX) match: the 3–4 digits after the prefix.
fn card_number(norm: &str, prefix: &str) -> Option<String> {
    let bytes = norm.as_bytes();
    let mut from = 0;
    while let Some(pos) = norm[from..].find(prefix) {
        let mut i = from + pos + prefix.len();
        if bytes.get(i) == Some(&b'_') {
            i += 1;
        }
        let digits: String = norm[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .take(4)
            .collect();
        if digits.len() >= 3 {
            return Some(digits);
        }
        from += pos + 1;
    }
    None
}

/// The class a CPU-trained record carries: the architecture, since SIMD paths differ by it.
pub fn cpu_class() -> String {
    format!("CPU_{}", std::env::consts::ARCH.to_uppercase())
}

/// The reference's `gpu_verification_class`: the normalised name, whose RTX/GTX/H100/A100
/// prefixes already stand for their class.
pub fn verification_class(gpu_model: &str) -> String {
    reference_gpu_model(gpu_model)
}

/// Rerun tolerance for a class (|claimed − rerun| ≤ tol is "within tolerance").
pub fn tolerance(class: &str) -> f64 {
    match class {
        "H100" | "A100" => 0.0015,
        "RTX_5090" | "RTX_4090" => 0.002,
        "RTX_3090" | "RTX_3060" => 0.003,
        _ => 0.002,
    }
}
