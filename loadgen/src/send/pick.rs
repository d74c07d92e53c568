//! Which of a target's requests goes next (`--pick`): in turn, at random, or at random by
//! weight. One picker per target and worker, so the hot path takes no lock; a target with
//! one request never draws.

use rand::{Rng as _, SeedableRng as _};

use crate::configured::requests_file::Pick;

pub(super) struct Picker {
    how: Pick,
    count: u32,
    turn: u32,
    rng: rand::rngs::SmallRng,
    /// Running sums of the weights, for `Pick::Weight`.
    cumulative: Vec<f64>,
}

impl Picker {
    pub(super) fn new(how: Pick, weights: &[f64], seed: u64) -> Picker {
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += w;
                sum
            })
            .collect();
        Picker {
            how,
            count: weights.len().max(1) as u32,
            turn: 0,
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
            cumulative,
        }
    }

    /// The index of the next request.
    #[inline]
    pub(super) fn next(&mut self) -> u32 {
        if self.count == 1 {
            return 0;
        }
        match self.how {
            Pick::Turn => {
                let i = self.turn;
                self.turn = (i + 1) % self.count;
                i
            }
            Pick::Random => self.rng.random_range(0..self.count),
            Pick::Weight => {
                let total = self.cumulative.last().copied().unwrap_or(0.0);
                let x = self.rng.random::<f64>() * total;
                let i = self.cumulative.partition_point(|&c| c <= x);
                (i as u32).min(self.count - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_of_picking_gives_each_request_its_share() {
        let mut turn = Picker::new(Pick::Turn, &[1.0, 1.0, 1.0], 1);
        let seq: Vec<u32> = (0..6).map(|_| turn.next()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        for (how, weights, want) in [
            (Pick::Random, [1.0, 1.0, 1.0], [1.0 / 3.0; 3]),
            (Pick::Weight, [1.0, 2.0, 7.0], [0.1, 0.2, 0.7]),
        ] {
            let mut p = Picker::new(how, &weights, 7);
            let mut n = [0u32; 3];
            for _ in 0..30_000 {
                n[p.next() as usize] += 1;
            }
            for (got, want) in n.iter().zip(want) {
                let share = f64::from(*got) / 30_000.0;
                assert!((share - want).abs() < 0.02, "{how:?}: {n:?}");
            }
        }
        assert_eq!(Picker::new(Pick::Weight, &[5.0], 1).next(), 0);
    }
}
