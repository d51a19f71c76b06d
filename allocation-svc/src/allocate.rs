//! The pure allocation step: requests of one pool, in arrival order, take units from the
//! pool's batches first-in first-out. No I/O, so it is property-tested on its own.
//!
//! A request is all or nothing: if the pool cannot cover all its shares it takes none (and
//! fails), and later, smaller requests may still be served.

use rust_decimal::Decimal;
use uuid::Uuid;

/// An inventory batch as the step sees it, in FIFO order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `bulk_purchases.id`.
    pub id: Uuid,
    /// Units left; the step lowers it.
    pub remaining: i64,
}

/// One investment to allocate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The investment.
    pub investment_id: Uuid,
    /// Whole shares wanted (> 0).
    pub shares: i64,
    /// Price per share fixed when the investment was made.
    pub price_per_share: Decimal,
}

/// Units of one batch given to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The batch.
    pub batch_id: Uuid,
    /// Units taken from it.
    pub units: i64,
    /// `units * price_per_share`, exact.
    pub value: Decimal,
}

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fully served by these pieces, in FIFO order.
    Allocated(Vec<Piece>),
    /// Not enough units left in the pool; nothing was taken.
    Insufficient {
        /// Shares wanted.
        requested: i64,
        /// Units the pool had left.
        available: i64,
    },
}

/// Serves `requests` in order from `batches` (FIFO order), lowering `remaining`.
pub fn allocate(batches: &mut [Batch], requests: &[Request]) -> Vec<Outcome> {
    requests
        .iter()
        .map(|request| {
            let available: i64 = batches.iter().map(|b| b.remaining).sum();
            if request.shares <= 0 || request.shares > available {
                return Outcome::Insufficient {
                    requested: request.shares,
                    available,
                };
            }
            let mut wanted = request.shares;
            let mut pieces = Vec::new();
            for batch in batches.iter_mut().filter(|b| b.remaining > 0) {
                let units = wanted.min(batch.remaining);
                batch.remaining -= units;
                wanted -= units;
                pieces.push(Piece {
                    batch_id: batch.id,
                    units,
                    value: request.price_per_share * Decimal::from(units),
                });
                if wanted == 0 {
                    break;
                }
            }
            Outcome::Allocated(pieces)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batches(units: &[i64]) -> Vec<Batch> {
        units
            .iter()
            .map(|&remaining| Batch {
                id: Uuid::new_v4(),
                remaining,
            })
            .collect()
    }

    fn request(shares: i64, cents: i64) -> Request {
        Request {
            investment_id: Uuid::new_v4(),
            shares,
            price_per_share: Decimal::new(cents, 2),
        }
    }

    #[test]
    fn spans_batches_oldest_first() {
        let mut pool = batches(&[3, 5, 10]);
        let ids: Vec<_> = pool.iter().map(|b| b.id).collect();
        let outcomes = allocate(&mut pool, &[request(6, 1050)]);
        let Outcome::Allocated(pieces) = &outcomes[0] else {
            panic!("allocated")
        };
        let got: Vec<_> = pieces.iter().map(|p| (p.batch_id, p.units)).collect();
        assert_eq!(got, [(ids[0], 3), (ids[1], 3)]);
        assert_eq!(pieces[0].value, Decimal::new(3150, 2));
        assert_eq!(
            pool.iter().map(|b| b.remaining).collect::<Vec<_>>(),
            [0, 2, 10]
        );
    }

    #[test]
    fn too_big_a_request_takes_nothing_and_smaller_later_ones_still_fit() {
        let mut pool = batches(&[4]);
        let outcomes = allocate(&mut pool, &[request(5, 100), request(4, 100)]);
        assert_eq!(
            outcomes[0],
            Outcome::Insufficient {
                requested: 5,
                available: 4
            }
        );
        assert!(matches!(outcomes[1], Outcome::Allocated(_)));
        assert_eq!(pool[0].remaining, 0);
    }

    proptest! {
        #[test]
        fn units_are_conserved_fifo_and_exactly_valued(
            units in proptest::collection::vec(0i64..50, 0..8),
            wants in proptest::collection::vec((1i64..40, 1i64..100_000), 0..20),
        ) {
            let mut pool = batches(&units);
            let before = pool.clone();
            let requests: Vec<_> = wants.iter().map(|&(s, c)| request(s, c)).collect();
            let outcomes = allocate(&mut pool, &requests);

            prop_assert_eq!(outcomes.len(), requests.len());
            let mut taken = vec![0i64; pool.len()];
            let mut remaining: Vec<i64> = before.iter().map(|b| b.remaining).collect();
            for (request, outcome) in requests.iter().zip(&outcomes) {
                match outcome {
                    Outcome::Allocated(pieces) => {
                        // Exactly the shares, valued exactly at units x price.
                        prop_assert_eq!(pieces.iter().map(|p| p.units).sum::<i64>(), request.shares);
                        let value: Decimal = pieces.iter().map(|p| p.value).sum();
                        prop_assert_eq!(value, request.price_per_share * Decimal::from(request.shares));
                        for piece in pieces {
                            prop_assert!(piece.units > 0);
                            prop_assert_eq!(piece.value, request.price_per_share * Decimal::from(piece.units));
                        }
                        // FIFO: each piece comes from the oldest batch that still had units.
                        for piece in pieces {
                            let i = before.iter().position(|b| b.id == piece.batch_id).expect("known batch");
                            prop_assert!(remaining[..i].iter().all(|&r| r == 0), "an older batch still had units");
                            prop_assert!(piece.units <= remaining[i]);
                            remaining[i] -= piece.units;
                            taken[i] += piece.units;
                        }
                    }
                    Outcome::Insufficient { requested, available } => {
                        prop_assert_eq!(*requested, request.shares);
                        prop_assert_eq!(*available, remaining.iter().sum::<i64>());
                        prop_assert!(request.shares > *available);
                    }
                }
            }
            // Conserved: what each batch lost is what was handed out from it; never below zero.
            for (i, batch) in pool.iter().enumerate() {
                prop_assert!(batch.remaining >= 0);
                prop_assert_eq!(before[i].remaining - batch.remaining, taken[i]);
                prop_assert_eq!(batch.remaining, remaining[i]);
            }
        }
    }
}
