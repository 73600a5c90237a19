defmodule DevstralElixir.Jobs.EventsTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.Events

  setup do
    registry = :"events_test_#{System.unique_integer([:positive])}"
    start_supervised!({Events, name: registry})
    %{registry: registry}
  end

  test "subscribers of a job and of :all get its events; others do not", %{registry: registry} do
    test = self()

    spawn_subscriber = fn key ->
      spawn_link(fn ->
        Events.subscribe(key, registry)
        send(test, {:subscribed, self()})

        receive do
          message -> send(test, {:got, key, message})
        end
      end)
    end

    for key <- [1, :all, 2] do
      spawn_subscriber.(key)
      assert_receive {:subscribed, _}
    end

    Events.publish(registry, 1, {:progress, %{step: 1}})

    assert_receive {:got, 1, {Events, 1, {:progress, %{step: 1}}}}
    assert_receive {:got, :all, {Events, 1, {:progress, %{step: 1}}}}
    refute_received {:got, 2, _}
  end

  test "unsubscribe stops delivery", %{registry: registry} do
    :ok = Events.subscribe(5, registry)
    :ok = Events.unsubscribe(5, registry)
    Events.publish(registry, 5, {:progress, %{}})
    refute_received {Events, 5, _}
  end
end
