//! Conformance: every vector produced by the reference (spec/vectors/) must pass.

use serde_json::Value as J;
use spore_spec::crypto::{from_hex, sha256_hex, to_hex};
use spore_spec::json::{self, float_repr};
use spore_spec::object::SignedObject;
use spore_spec::wire::{split_frame, Message};
use spore_spec::{Identity, Signed};

fn load(name: &str) -> J {
    let path = format!("{}/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn seed(hex: &str) -> [u8; 32] {
    from_hex(hex).unwrap().try_into().unwrap()
}

fn decode_frame(frame_hex: &str) -> Option<Message> {
    let frame = from_hex(frame_hex).unwrap();
    let (body, used) = split_frame(&frame).unwrap().expect("whole frame");
    assert_eq!(used, frame.len());
    Message::decode_body(body).unwrap()
}

fn check_signed_vector(v: &J) {
    let name = v["name"].as_str().unwrap();
    let frame_hex = v["wire"]["frame_hex"].as_str().unwrap();
    let message = decode_frame(frame_hex).unwrap_or_else(|| panic!("{name}: ignored"));
    assert_eq!(message.message_type(), v["wire"]["msg_type"], "{name}");
    // Re-encoding the decoded message gives the reference's exact frame.
    assert_eq!(
        to_hex(&message.encode_frame().unwrap()),
        frame_hex,
        "{name}: frame"
    );

    let payload = json::parse(v["wire"]["payload_json"].as_str().unwrap().as_bytes()).unwrap();
    let object = SignedObject::from_value(&payload).unwrap();
    assert_eq!(
        object.clone().into_message(),
        message,
        "{name}: kind detection"
    );
    let (canonical, claimed) = match &object {
        SignedObject::Experiment(o) => (o.canonical_bytes(), o.claimed_id().to_string()),
        SignedObject::Task(o) => (o.canonical_bytes(), o.claimed_id().to_string()),
        SignedObject::Control(o) => (o.canonical_bytes(), o.claimed_id().to_string()),
        SignedObject::Profile(o) => (o.canonical_bytes(), o.claimed_id().to_string()),
    };
    assert_eq!(
        to_hex(&canonical),
        v["canonical_hex"],
        "{name}: canonical bytes"
    );
    assert_eq!(sha256_hex(&canonical), v["id"], "{name}: id");
    assert_eq!(claimed, v["id"].as_str().unwrap(), "{name}: claimed id");
    object.verify().unwrap_or_else(|e| panic!("{name}: {e}"));

    // Signing the same content with the same seed reproduces the signature byte for byte.
    let identity = Identity::from_seed(seed(v["seed_hex"].as_str().unwrap()));
    assert_eq!(identity.node_id(), v["node_id"].as_str().unwrap());
    let mut resigned = object.clone();
    match &mut resigned {
        SignedObject::Experiment(o) => o.sign_with(&identity),
        SignedObject::Task(o) => o.sign_with(&identity),
        SignedObject::Control(o) => o.sign_with(&identity),
        SignedObject::Profile(o) => o.sign_with(&identity),
    }
    assert_eq!(resigned, object, "{name}: re-signing");
}

#[test]
fn signed_object_vectors_pass() {
    let mut count = 0;
    for file in [
        "experiments_v1.json",
        "experiments_v2.json",
        "tasks.json",
        "control_events.json",
        "profiles.json",
    ] {
        for v in load(file)["vectors"].as_array().unwrap() {
            check_signed_vector(v);
            count += 1;
        }
    }
    assert_eq!(count, 33 + 32 + 4 + 7 + 3);
}

#[test]
fn key_vectors_give_the_reference_node_ids() {
    for (_, key) in load("keys.json")["keys"].as_object().unwrap() {
        let id = Identity::from_seed(seed(key["seed_hex"].as_str().unwrap()));
        assert_eq!(id.node_id(), key["node_id"].as_str().unwrap());
        assert_eq!(
            id.seed_hex(),
            key["private_key_file_contents"].as_str().unwrap()
        );
    }
}

#[test]
fn float_vectors_print_like_python() {
    for row in load("floats.json")["rows"].as_array().unwrap() {
        let bits = u64::from_str_radix(row["ieee754_bits_hex"].as_str().unwrap(), 16).unwrap();
        let x = f64::from_bits(bits);
        assert_eq!(
            float_repr(x),
            row["json_dumps"].as_str().unwrap(),
            "{}",
            row["label"]
        );
        // and the printed text parses back to the same bits
        if x.is_finite() {
            let parsed = json::parse(float_repr(x).as_bytes()).unwrap();
            assert_eq!(parsed, json::Value::Float(x));
        }
    }
}

#[test]
fn wire_frame_vectors_round_trip() {
    for frame in load("wire_frames.json")["frames"].as_array().unwrap() {
        let hex = frame["frame_hex"].as_str().unwrap();
        let name = frame["name"].as_str().unwrap();
        // The generic encoder reproduces every envelope, extra payload keys included.
        let bytes = from_hex(hex).unwrap();
        let body = json::parse(&bytes[4..]).unwrap();
        assert_eq!(json::to_wire(&body).as_bytes(), &bytes[4..], "{name}");
        let message = decode_frame(hex).unwrap_or_else(|| panic!("{name}"));
        if name == "envelope_non_ascii_escaped" {
            // a ping with an extra payload key: typed messages keep only their own fields
            assert_eq!(message, Message::Ping);
            continue;
        }
        assert_eq!(to_hex(&message.encode_frame().unwrap()), hex, "{name}");
    }
}

#[test]
fn transcript_frames_decode_and_round_trip() {
    let transcripts = load("transcripts.json");
    let mut frames = 0;
    for (name, t) in transcripts.as_object().unwrap() {
        let Some(list) = t.get("frames").and_then(J::as_array) else {
            continue;
        };
        for f in list {
            let hex = f["frame_hex"].as_str().unwrap();
            if name.starts_with("SECURITY") {
                // carries a private key as "code"; decoding it must still work
                decode_frame(hex);
                continue;
            }
            let message = decode_frame(hex).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(to_hex(&message.encode_frame().unwrap()), hex, "{name}");
            frames += 1;
        }
    }
    assert!(frames > 20, "only {frames} frames checked");
}

#[test]
fn random_doubles_print_like_cpython() {
    let rows = load("random_floats.json");
    let rows = rows["rows"].as_array().unwrap();
    assert!(rows.len() > 3000);
    for row in rows {
        let bits = u64::from_str_radix(row[0].as_str().unwrap(), 16).unwrap();
        assert_eq!(float_repr(f64::from_bits(bits)), row[1].as_str().unwrap());
    }
}

#[test]
fn gpu_classes_match_the_reference() {
    use spore_spec::hardware::{reference_gpu_model, tolerance, verification_class};
    let v = load("gpu_classes.json");
    for row in v["rows"].as_array().unwrap() {
        let input = row["input"].as_str().unwrap_or("");
        let want = row["normalize_gpu_model"].as_str().unwrap();
        assert_eq!(reference_gpu_model(input), want, "input {input:?}");
        let class = verification_class(input);
        assert_eq!(class, row["gpu_verification_class"].as_str().unwrap());
        assert_eq!(tolerance(&class), row["tolerance"].as_f64().unwrap());
    }
    // what nvidia-smi names a real H100 lands where the reference (torch's device name, the
    // same string) puts it, so both nodes' records of one card are one class
    assert_eq!(
        reference_gpu_model("NVIDIA H100 80GB HBM3"),
        "NVIDIA_H100_80GB_HBM3"
    );
}
