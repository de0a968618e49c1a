//! Reading a role's `/metrics` (its address: `testkit::RoleProcess::metrics_url`): the
//! figures on a page.

use anyhow::Context;

/// One scrape of `url`.
pub async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Scrape> {
    let response = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("scrape {url}"))?;
    anyhow::ensure!(
        response.status() == 200,
        "scrape {url}: {}",
        response.status()
    );
    Ok(Scrape(response.text().await?))
}

/// A `/metrics` page in the Prometheus text format.
pub struct Scrape(String);

impl Scrape {
    /// The sum of the samples of `name` whose labels satisfy `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: impl Fn(&str) -> bool) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, series_labels) = series.split_once('{').unwrap_or((series, "}"));
                (series_name == name && labels(series_labels))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }

    /// The sum of the samples of `name`, every label set.
    pub fn total(&self, name: &str) -> f64 {
        self.sum(name, |_| true)
    }

    /// A histogram's observations, and those at or under `bound` (one of its buckets' `le`).
    pub fn observed(&self, histogram: &str, bound: f64) -> (f64, f64) {
        let within = self.sum(&format!("{histogram}_bucket"), |labels| {
            le(labels).is_some_and(|le| (le - bound).abs() < f64::EPSILON)
        });
        (self.total(&format!("{histogram}_count")), within)
    }

    /// The value of `name`'s sample without labels, if the page has one.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}

/// A bucket's upper bound, from its labels (`le="1"}`).
fn le(labels: &str) -> Option<f64> {
    labels
        .split("le=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::float_cmp, reason = "whole numbers, exact in an f64")]
    fn a_histogram_is_read_by_its_count_and_one_bucket() {
        let page = Scrape(
            "# TYPE h histogram\n\
             h_bucket{le=\"0.25\"} 7\n\
             h_bucket{le=\"0.5\"} 9\n\
             h_bucket{le=\"+Inf\"} 10\n\
             h_sum 2.5\n\
             h_count 10\n\
             c{outcome=\"up\"} 3\n\
             c{outcome=\"down\"} 4\n\
             g 5\n"
                .to_owned(),
        );
        assert_eq!(page.observed("h", 0.25), (10.0, 7.0));
        assert_eq!(page.total("c"), 7.0);
        assert_eq!(page.sum("c", |labels| labels.contains("down")), 4.0);
        assert_eq!(page.get("g"), Some(5.0));
        assert_eq!(page.get("h"), None);
    }
}
