defmodule DevstralElixir.Web.UI.JobViewTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Web.UI.JobView

  defp svg(events), do: events |> JobView.chart() |> IO.iodata_to_binary()

  test "the loss chart draws train and eval loss against step, counting on across stages" do
    events = [
      %{"step" => 1, "metrics" => %{"loss" => 2.0}},
      %{"step" => 2, "metrics" => %{"loss" => 1.5, "eval_loss" => 1.8}},
      # a new stage starts its steps again
      %{"step" => 1, "metrics" => %{"loss" => 1.2}},
      %{"kind" => "LOG", "message" => "no numbers"}
    ]

    chart = svg(events)
    assert chart =~ ~s(data-testid="loss-chart")
    assert chart =~ ~s(data-train-points="3" data-eval-points="1")

    [train] =
      Regex.run(~r/<polyline class="train" points="([^"]+)"/, chart, capture: :all_but_first)

    xs =
      train
      |> String.split(" ")
      |> Enum.map(&(&1 |> String.split(",") |> hd() |> String.to_float()))

    assert xs == Enum.sort(xs) and length(Enum.uniq(xs)) == 3
    assert chart =~ ~s(<polyline class="eval")
  end

  test "no loss yet: a chart that says so" do
    assert svg([%{"step" => 3}]) =~ "no loss reported yet"
  end

  test "log lines are escaped" do
    html =
      [%{"kind" => "LOG", "message" => "<script>x</script>"}]
      |> JobView.log()
      |> IO.iodata_to_binary()

    assert html == "<li>LOG &lt;script&gt;x&lt;/script&gt;</li>"
  end
end
