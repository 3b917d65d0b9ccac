//! What every criterion bench of this crate shares.

/// Like `criterion_main!`, but on a pool worker: the way the CLI drives its kernels (see
/// `infermark_models::kernels::on_pool_worker`), so that a timed call forks and joins in place.
macro_rules! criterion_main_on_pool {
    ($($group:path),+ $(,)?) => {
        fn main() {
            infermark_models::kernels::on_pool_worker(|| {
                $($group();)+
                criterion::Criterion::default()
                    .configure_from_args()
                    .final_summary();
            })
            .expect("start the thread pool");
        }
    };
}
