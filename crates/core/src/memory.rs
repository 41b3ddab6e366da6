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
