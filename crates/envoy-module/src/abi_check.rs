//! Refuses to load into an Envoy whose dynamic-module ABI is not the one this module was
//! written for.
//!
//! Envoy 1.40 compares the ABI version string a module returns from
//! `envoy_dynamic_module_on_program_init` with its own, but on a mismatch only logs a warning
//! and loads the module anyway; a call through a changed callback would then be undefined
//! behaviour. So the module checks the Envoy binary itself (`/proc/self/exe`, read as a file):
//! the set of `envoy_dynamic_module_callback_*` symbols it exports must be exactly Envoy
//! 1.40.0's ([`ENVOY_1_40_CALLBACKS`], a SHA-256 of their sorted names), and must contain every
//! callback this module calls. Any ABI change adds, removes or renames callbacks; one that only
//! changed a signature would not be seen, which is why the fingerprint is of one release.

use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};

/// SHA-256 of the sorted names (joined by `\n`) of the 781 `envoy_dynamic_module_callback_*`
/// symbols that Envoy 1.40.0 (9e5580933739775e8bce696a57a2e1bc99368f23) exports.
pub const ENVOY_1_40_CALLBACKS: &str =
    "58cd3d2407c6f746a6a9a0bd4da303886d9596f90b361e942a37323a04d99de5";

const PREFIX: &str = "envoy_dynamic_module_callback_";

/// Checks the running executable.
pub fn check() -> Result<(), String> {
    let names = exported_callbacks("/proc/self/exe")?;
    verdict(&names)
}

/// The decision on a list of exported callback names (pure).
pub fn verdict(names: &[String]) -> Result<(), String> {
    for used in crate::ffi::CALLBACKS_USED {
        if !names.iter().any(|n| n == used) {
            return Err(format!("this Envoy has no {used}: not Envoy 1.40's ABI"));
        }
    }
    let got = fingerprint(names);
    if got != ENVOY_1_40_CALLBACKS {
        return Err(format!(
            "this Envoy's dynamic-module callbacks ({} of them, fingerprint {got}) are not \
             Envoy 1.40.0's: build the module for this Envoy",
            names.len()
        ));
    }
    Ok(())
}

pub fn fingerprint(names: &[String]) -> String {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let digest = Sha256::digest(sorted.join("\n").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The defined dynamic symbols of an ELF64 little-endian file named `envoy_dynamic_module_callback_*`.
pub fn exported_callbacks(path: &str) -> Result<Vec<String>, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut read_at = |offset: u64, len: usize| -> Result<Vec<u8>, String> {
        let mut buf = vec![0; len];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(buf)
    };
    let eh = read_at(0, 64)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Err(format!("{path}: not a little-endian ELF64 file"));
    }
    let shoff = u64_at(&eh, 0x28);
    let shentsize = usize::from(u16_at(&eh, 0x3a));
    let shnum = usize::from(u16_at(&eh, 0x3c));
    if shentsize < 64 || shnum == 0 || shnum > 65_000 {
        return Err(format!("{path}: unexpected section headers"));
    }
    let sh = read_at(shoff, shentsize * shnum)?;
    let section = |i: usize| &sh[i * shentsize..(i + 1) * shentsize];
    let dynsym = (0..shnum)
        .map(section)
        .find(|s| u32_at(s, 4) == 11) // SHT_DYNSYM
        .ok_or_else(|| format!("{path}: no dynamic symbol table"))?;
    let strtab_index = u32_at(dynsym, 40) as usize;
    if strtab_index >= shnum {
        return Err(format!("{path}: bad string table index"));
    }
    let strtab = section(strtab_index);
    let limit = 64 * 1024 * 1024;
    let (sym_size, str_size) = (u64_at(dynsym, 32), u64_at(strtab, 32));
    if sym_size > limit || str_size > limit {
        return Err(format!("{path}: dynamic symbol table too large"));
    }
    let syms = read_at(u64_at(dynsym, 24), sym_size as usize)?;
    let strs = read_at(u64_at(strtab, 24), str_size as usize)?;
    let mut names = Vec::new();
    for sym in syms.chunks_exact(24) {
        let name_off = u32_at(sym, 0) as usize;
        let defined = u16_at(sym, 6) != 0;
        if !defined || name_off >= strs.len() {
            continue;
        }
        let name = &strs[name_off..];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        if let Ok(name) = std::str::from_utf8(&name[..end]) {
            if name.starts_with(PREFIX) {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_envoy_1_40s_callbacks_pass() {
        let used: Vec<String> = crate::ffi::CALLBACKS_USED
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Missing a callback the module calls: refused, whatever else.
        let mut fewer = used.clone();
        fewer.pop();
        assert!(verdict(&fewer).unwrap_err().contains("has no"));
        // All it calls, but not exactly 1.40's set: refused.
        assert!(verdict(&used).unwrap_err().contains("not Envoy 1.40.0's"));
    }

    #[test]
    fn the_fingerprint_ignores_order_and_duplicates() {
        let a = vec!["b".to_owned(), "a".to_owned(), "a".to_owned()];
        let b = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    /// The real Envoy 1.40 (installed by scripts/install-tools.sh envoy) passes.
    #[test]
    #[ignore = "needs .tools/bin/envoy; run by make module-smoke"]
    fn envoy_1_40_passes() {
        let envoy = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../.tools/venv/lib/python3.11/site-packages/envoy/_bin/envoy"
        );
        let names = exported_callbacks(envoy).expect("read envoy");
        assert_eq!(verdict(&names), Ok(()));
    }
}
