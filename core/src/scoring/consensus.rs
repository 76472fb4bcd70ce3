//! Leave-one-out consensus: each answer is measured against the medoid of the *other* answers.
//!
//! The medoid of a set is the member with the smallest total distance to the rest, so a lone
//! outlier is never chosen while the others agree. Exact ties keep every tied member and the
//! caller averages over them, which keeps the result independent of the answers' order.

/// `f` over every item, spread over the available cores when the job is `heavy`.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    heavy: bool,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = if heavy {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(items.len())
    } else {
        1
    };
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Computes `f(i, j)` for every pair `i < j`, spreading large jobs over the available cores.
pub fn pairwise<T, F>(n: usize, heavy: bool, f: F) -> Vec<Vec<T>>
where
    T: Clone + Default + Send,
    F: Fn(usize, usize) -> T + Sync,
{
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let values = parallel_map(&pairs, heavy, |&(i, j)| f(i, j));
    let mut matrix = vec![vec![T::default(); n]; n];
    for (&(i, j), v) in pairs.iter().zip(values) {
        matrix[i][j] = v.clone();
        matrix[j][i] = v;
    }
    matrix
}

/// For each answer, the medoid(s) of the other answers under the symmetric `distance` matrix.
/// With two answers each one's reference is the other; with one there is none.
pub fn references(distance: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let n = distance.len();
    (0..n)
        .map(|i| {
            let others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            let totals: Vec<f64> = others
                .iter()
                .map(|&j| others.iter().map(|&k| distance[j][k]).sum())
                .collect();
            let best = totals.iter().copied().fold(f64::INFINITY, f64::min);
            others
                .iter()
                .zip(&totals)
                .filter(|(_, t)| **t <= best + 1e-12)
                .map(|(j, _)| *j)
                .collect()
        })
        .collect()
}

/// The mean of `f` over `refs` (0 for none).
pub fn mean_over(refs: &[usize], f: impl Fn(usize) -> f64) -> f64 {
    if refs.is_empty() {
        return 0.0;
    }
    refs.iter().map(|&j| f(j)).sum::<f64>() / refs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outlier_is_nobodys_reference() {
        // 0, 1 and 2 agree; 3 is far from everyone.
        let d = vec![
            vec![0.0, 0.1, 0.1, 1.0],
            vec![0.1, 0.0, 0.2, 1.0],
            vec![0.1, 0.2, 0.0, 1.0],
            vec![1.0, 1.0, 1.0, 0.0],
        ];
        let refs = references(&d);
        assert!(refs.iter().all(|r| !r.contains(&3)), "{refs:?}");
        assert_eq!(refs[3], vec![0]);
        // For 1, answers 0 and 2 are equally central among {0, 2, 3}: both are kept.
        assert_eq!(refs[1], vec![0, 2]);
    }

    #[test]
    fn two_answers_reference_each_other_and_one_has_none() {
        assert_eq!(
            references(&[vec![0.0, 0.5], vec![0.5, 0.0]]),
            vec![vec![1], vec![0]]
        );
        assert_eq!(references(&[vec![0.0]]), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn pairwise_fills_a_symmetric_matrix_in_parallel_too() {
        for heavy in [false, true] {
            let m = pairwise(5, heavy, |i, j| (i * 10 + j) as f64);
            assert_eq!(m[1][3], 13.0);
            assert_eq!(m[3][1], 13.0);
            assert_eq!(m[2][2], 0.0);
        }
    }
}
