//! Property tests: decoders never panic on arbitrary input, and decode → encode is stable.

use proptest::prelude::*;
use spore_spec::json::{self, float_repr, Value};
use spore_spec::object::SignedObject;
use spore_spec::wire::{split_frame, Message};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = json::parse(&bytes);
        let _ = Message::decode_body(&bytes);
        let _ = SignedObject::parse(&bytes);
        let _ = split_frame(&bytes);
    }

    #[test]
    fn json_like_bytes_never_panic_the_decoders(text in r#"[\[\]{}":,0-9eE.+\-a-z\\ ]{0,200}"#) {
        let _ = json::parse(text.as_bytes());
        let _ = Message::decode_body(text.as_bytes());
        let _ = SignedObject::parse(text.as_bytes());
    }

    #[test]
    fn decode_encode_decode_is_stable(value in json_value()) {
        let wire = json::to_wire(&value);
        prop_assert!(wire.is_ascii());
        let back = json::parse(wire.as_bytes()).unwrap();
        prop_assert_eq!(&back, &value);
        let canonical = json::to_canonical(&back);
        let again = json::parse(canonical.as_bytes()).unwrap();
        prop_assert_eq!(json::to_canonical(&again), canonical);
    }

    #[test]
    fn float_repr_round_trips(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let text = float_repr(x);
        let back: f64 = text.parse().unwrap();
        prop_assert_eq!(back.to_bits(), x.to_bits());
        prop_assert!(text.contains('.') || text.contains('e'));
    }

    #[test]
    fn messages_with_mutated_bytes_never_panic(flip in 0usize..400, byte in any::<u8>()) {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/experiments_v2.json")).unwrap()
        ).unwrap();
        let hex = v["vectors"][1]["wire"]["frame_hex"].as_str().unwrap();
        let mut frame = spore_spec::crypto::from_hex(hex).unwrap();
        let i = 4 + flip % (frame.len() - 4);
        frame[i] = byte;
        if let Ok(Some(Message::Experiment(record))) = Message::decode_body(&frame[4..]) {
            use spore_spec::Signed;
            let _ = record.verify();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The direct writer and the generic one agree on every record, canonical and wire.
    #[test]
    fn direct_record_writer_matches_the_generic_encoder(
        text in any::<String>(),
        val in any::<f64>().prop_filter("finite", |x| x.is_finite()),
        int_val in any::<bool>(),
        depth in any::<i64>(),
        version in 1i64..4,
        parent in proptest::option::of("[0-9a-f]{64}"),
    ) {
        use spore_spec::{ExperimentRecord, Number, Signed};
        let r = ExperimentRecord {
            description: text.clone(),
            diff: text,
            depth,
            version,
            parent,
            val_bpb: if int_val { Number::Int(depth) } else { Number::Float(val) },
            task_id: "t".into(),
            ..Default::default()
        };
        prop_assert_eq!(r.to_wire_json(), json::to_wire(&r.to_value()));
        prop_assert_eq!(r.canonical_bytes(), json::to_canonical(&r.canonical_value()).into_bytes());
    }
}
