"""The GOE on a budget (N = 1 ... 4, 2^18 matrices each), and critical points of widths 2 and 4
on 100 digits, from 6 seeds × 4 starting points, 80 Newton steps each: six seeds, the fewest from
which the index-loss ρ's jackknife error decides when every seed left out gives the same ρ (an
error of 0), and steps enough that a start still converging is not counted as stalled."""

from common import quick


def get_config():
  return quick(
    __file__,
    {
      "sizes": [1, 2, 3, 4],
      "samples": 2**18,
      "data.num_examples": 100,
      "widths": [2, 4],
      "descent.seeds": [0, 1, 2, 3, 4, 5],
      "descent.start_steps": [0, 30, 300, 3000],
      "newton.steps": 80,
    },
  )
