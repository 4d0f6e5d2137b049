"""How much training time does the live metrics view cost?

Trains TRL's DPOTrainer on the tiny offline model (prefnb.zoo) with `LivePlotCallback(live=True)`.
With no notebook front end the view's widgets (a progress line and an image) are updated all the same,
and every redraw renders the PNG the image widget holds, which is what a Jupyter/Colab front end shows.
A second callback sleeps `--step-seconds` per optimizer step, so the
steps last about as long as a small model's step on a free GPU (the tiny model alone takes ~25 ms).
We report the time spent redrawing during training as a fraction of training time (the throttle keeps the
redraws after the first picture within 5% plus 3 s of grace, planning for the slowest redraw so far), the cost of one
redraw, what redrawing at every log would cost, and the one-off cost of writing metrics.png at the end.

    python benchmarks/live_plot_overhead.py [--steps 300] [--step-seconds 0.1]
"""
import argparse, os, sys, tempfile, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--step-seconds', type=float, default=0.1)
    ap.add_argument('--budget', type=float, default=0.05)
    a = ap.parse_args(argv)
    import IPython.display as ipd
    import transformers, datasets
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer
    from prefnb.zoo import resolve_model, toy_dataset
    from prefnb.plots import LivePlotCallback
    transformers.logging.set_verbosity_error(); datasets.disable_progress_bars()

    ipd.display = lambda *objs, **kw: None   # no front end: the view's widgets are updated all the same (each redraw renders the PNG)

    class SlowStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): time.sleep(a.step_seconds)

    out = tempfile.mkdtemp()
    live = LivePlotCallback('dpo', live=True, budget=a.budget)
    args = DPOConfig(output_dir=out, use_cpu=True, bf16=False, report_to=[], save_strategy='no',
                     gradient_checkpointing=False, logging_steps=1, learning_rate=5e-4, max_steps=a.steps,
                     per_device_train_batch_size=4, disable_tqdm=True, seed=0)
    tr = DPOTrainer(model=resolve_model('prefnb:tiny-chatml'), args=args,
                    train_dataset=toy_dataset('prefnb:toy-pairs', 256), callbacks=[SlowStep(), live])
    tr.remove_callback(PrinterCallback)
    tr.train()
    redraws = live.draws - 1   # the last draw is the final one, after training
    per_draw = live.plot_seconds / redraws if redraws else live.final_seconds
    every_log = per_draw * a.steps / live.train_seconds
    lines = [f'steps: {a.steps} (logging every step), step time ~{live.train_seconds / a.steps:.3f} s',
             f'training time: {live.train_seconds:.1f} s',
             f'live redraws during training: {redraws}, {live.plot_seconds:.2f} s in all = {live.overhead:.2%} of training (budget {a.budget:.0%} + {live.grace:.0f} s)',
             f'one redraw (figure + PNG render): {per_draw:.2f} s; redrawing at every log would cost ~{every_log:.0%} of training',
             f'final draw + metrics.png after training: {live.final_seconds:.2f} s']
    print('\n'.join(lines))
    spent = live.plot_seconds - live.first_cost   # the first picture is drawn whatever the budget
    return 0 if spent <= a.budget * live.train_seconds + live.grace + live.max_cost + 1e-9 else 1   # + at most one redraw no earlier one foretold

if __name__ == '__main__': sys.exit(main())
