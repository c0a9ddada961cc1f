//! A pushed layer blob as the scanner reads it: gzip, zstd or plain tar,
//! straight from the client's bytes (tar headers, paths, sizes, whiteouts).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(inventory) = berth_scan::scan_layer(data) {
        let image = berth_scan::stack([&inventory, &inventory]);
        let _ = berth_scan::lookups(&image);
    }
});
