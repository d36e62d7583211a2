//! Fuzzes the SXP reader: any input either fails with a positioned error or reads
//! values that the writer and the pretty printer print back to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match sxp::parse_all(text) {
        Ok(values) => {
            for v in values {
                let shown = v.to_string();
                assert_eq!(sxp::parse(&shown).as_ref(), Ok(&v), "show: {shown:?}");
                let pretty = sxp::pretty(&v);
                assert_eq!(sxp::parse(&pretty).as_ref(), Ok(&v), "pretty: {pretty:?}");
            }
        }
        Err(e) => assert!(e.line >= 1 && e.col >= 1, "error without a position: {e}"),
    }
});
