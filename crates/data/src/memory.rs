//! The machine's memory, for refusing work that cannot fit before allocating it: the data
//! loader refuses files whose images would not fit ([`crate::mnist`]), the command-line tool
//! models whose buffers would not.

/// The machine's memory in bytes (Linux's `MemTotal`); `None` where it cannot be read.
pub fn machine_memory() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What this process may still allocate: the least of the machine's memory and, under an
/// address-space limit (`ulimit -v`, `RLIMIT_AS`), that limit less what the process has mapped
/// already; with words for the error message. `None` where neither can be read.
pub fn memory_available() -> Option<(u128, &'static str)> {
    let machine = machine_memory().map(|bytes| (bytes, "of this machine's memory"));
    let address_space = address_space_left().map(|bytes| {
        (
            bytes,
            "of address space this process may still map (its ulimit -v)",
        )
    });
    match (machine, address_space) {
        (Some(machine), Some(space)) => Some(if space.0 < machine.0 { space } else { machine }),
        (machine, space) => machine.or(space),
    }
}

/// The address-space limit (Linux's `/proc/self/limits`, "Max address space") less the
/// process's mapped size (`VmSize` of `/proc/self/status`); `None` when unlimited or unknown.
fn address_space_left() -> Option<u128> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max address space"))?;
    // "Max address space   <soft>   <hard>   bytes": the soft limit is the one enforced.
    let soft: u128 = line
        .trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mapped_kib: u128 = status
        .lines()
        .find(|line| line.starts_with("VmSize:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(soft.saturating_sub(mapped_kib * 1024))
}

/// `6.3 TB`, `24.0 GB`, `512.0 MB`: decimal units, one decimal.
pub fn human_bytes(bytes: u128) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit + 1 == units.len() && value >= 1000.0 {
        return format!("{value:.1e} {}", units[unit]);
    }
    format!("{value:.1} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_in_decimal_units() {
        assert_eq!(human_bytes(6_300_000_000_000), "6.3 TB");
        assert_eq!(human_bytes(512), "512.0 B");
        assert_eq!(human_bytes(u128::MAX), "3.4e20 EB");
    }
}
