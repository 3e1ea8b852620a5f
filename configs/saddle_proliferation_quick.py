"""The GOE on a budget (N = 1 ... 4, 2^18 matrices each), and critical points of widths 2 and 4
on 100 digits, from 3 seeds × 4 starting points, 60 Newton steps each. Three seeds' few critical
points may leave the index-loss ρ's jackknife error over seeds undecided (an error of 0 decides
only from 6 seeds); the full config has 6."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "sizes": [1, 2, 3, 4],
      "samples": 2**18,
      "data.num_examples": 100,
      "widths": [2, 4],
      "descent.seeds": [0, 1, 2],
      "descent.start_steps": [0, 30, 300, 3000],
      "newton.steps": 60,
    },
  )
