//! The standard `process_*` metrics (CPU seconds, resident and virtual memory, open and maximum
//! file descriptors, threads, start time), read from `/proc/self` at each scrape.
//!
//! Why this and not a ready collector: prometheus-client ships none, and the one published
//! for it (`kubert-prometheus-process`) is pinned to prometheus-client 0.23, whose `Registry`
//! is another type than our 0.26 one. So the reading of `/proc` is the well-kept `procfs`
//! crate's, and this file only maps its fields onto the names and units of Prometheus'
//! client guidelines (the same set client_golang exports). Off Linux there is nothing to read
//! and the collector exports nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Exports the `process_*` family of the running process.
#[derive(Debug)]
pub(crate) struct ProcessCollector {
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), for the CPU times in `/proc/self/stat`.
    #[cfg(target_os = "linux")]
    ticks_per_second: f64,
    /// Bytes per page, for the resident set size.
    #[cfg(target_os = "linux")]
    page_size: f64,
    /// Start of the process in seconds since the Unix epoch, when `/proc` tells it.
    start_time: Option<f64>,
}

impl ProcessCollector {
    /// Reads what does not change over the process's life (tick rate, page size, start time).
    pub(crate) fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            // Both counts are small integers: exact in an f64.
            #[allow(clippy::cast_precision_loss)]
            let ticks_per_second = procfs::ticks_per_second() as f64;
            #[allow(clippy::cast_precision_loss)]
            let page_size = procfs::page_size() as f64;
            let start_time = procfs::boot_time_secs()
                .and_then(|boot| {
                    let stat = procfs::process::Process::myself()?.stat()?;
                    // Boot time in seconds and ticks since boot: both far below 2^53.
                    #[allow(clippy::cast_precision_loss)]
                    Ok(boot as f64 + stat.starttime as f64 / ticks_per_second)
                })
                .map_err(|err| tracing::warn!(error = %err, "no process start time from /proc"))
                .ok();
            Self {
                ticks_per_second,
                page_size,
                start_time,
            }
        }
        #[cfg(not(target_os = "linux"))]
        Self { start_time: None }
    }
}

/// Writes one gauge sample.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> std::fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        if let Some(start) = self.start_time {
            gauge(
                &mut encoder,
                "start_time",
                "Start time of the process since the Unix epoch in seconds",
                Some(&Unit::Seconds),
                start,
            )?;
        }
        #[cfg(target_os = "linux")]
        self.encode_linux(&mut encoder)?;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl ProcessCollector {
    /// The values that change: each one read now, and left out of this scrape if `/proc`
    /// cannot tell it (a scrape never fails for one unreadable file).
    // Counts of ticks, pages, bytes and descriptors are far below 2^53: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    fn encode_linux(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let me = match procfs::process::Process::myself() {
            Ok(me) => me,
            Err(err) => {
                tracing::debug!(error = %err, "no /proc/self");
                return Ok(());
            }
        };
        if let Ok(stat) = me.stat() {
            let cpu = (stat.utime + stat.stime) as f64 / self.ticks_per_second;
            ConstCounter::new(cpu).encode(encoder.encode_descriptor(
                "cpu",
                "Total user and system CPU time spent in seconds",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?)?;
            gauge(
                encoder,
                "resident_memory",
                "Resident memory size in bytes",
                Some(&Unit::Bytes),
                stat.rss as f64 * self.page_size,
            )?;
            gauge(
                encoder,
                "virtual_memory",
                "Virtual memory size in bytes",
                Some(&Unit::Bytes),
                stat.vsize as f64,
            )?;
            gauge(
                encoder,
                "threads",
                "Number of OS threads in the process",
                None,
                stat.num_threads as f64,
            )?;
        }
        if let Ok(open) = me.fd_count() {
            gauge(
                encoder,
                "open_fds",
                "Number of open file descriptors",
                None,
                open as f64,
            )?;
        }
        if let Ok(limits) = me.limits()
            && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            gauge(
                encoder,
                "max_fds",
                "Maximum number of open file descriptors",
                None,
                max as f64,
            )?;
        }
        Ok(())
    }
}
