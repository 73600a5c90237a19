defmodule DevstralElixir.Scrape.Licenses do
  @moduledoc """
  Licence names and the permissive-licence filter.

  Package metadata spells licences loosely ("MIT License", "Apache 2.0"), so
  names are normalised to SPDX identifiers before they are compared. A
  package passes when any of its licences is allowed; a licence that is an
  SPDX expression passes when one `OR` alternative has every `AND` part
  allowed.
  """

  @default ~w(MIT Apache-2.0 BSD-2-Clause BSD-3-Clause ISC 0BSD Unlicense MPL-2.0)

  @aliases %{
    "mit" => "MIT",
    "mit license" => "MIT",
    "the mit license" => "MIT",
    "expat" => "MIT",
    "apache-2.0" => "Apache-2.0",
    "apache 2.0" => "Apache-2.0",
    "apache 2" => "Apache-2.0",
    "apache-2" => "Apache-2.0",
    "apache2" => "Apache-2.0",
    "apache v2" => "Apache-2.0",
    "apache v2.0" => "Apache-2.0",
    "apache license 2.0" => "Apache-2.0",
    "apache license v2.0" => "Apache-2.0",
    "apache license, version 2.0" => "Apache-2.0",
    "apache license version 2.0" => "Apache-2.0",
    "apache software license 2.0" => "Apache-2.0",
    "bsd-2-clause" => "BSD-2-Clause",
    "bsd 2-clause" => "BSD-2-Clause",
    "bsd-2" => "BSD-2-Clause",
    "simplified bsd" => "BSD-2-Clause",
    "bsd-3-clause" => "BSD-3-Clause",
    "bsd 3-clause" => "BSD-3-Clause",
    "bsd-3" => "BSD-3-Clause",
    "new bsd" => "BSD-3-Clause",
    "isc" => "ISC",
    "isc license" => "ISC",
    "0bsd" => "0BSD",
    "unlicense" => "Unlicense",
    "the unlicense" => "Unlicense",
    "mpl-2.0" => "MPL-2.0",
    "mpl 2.0" => "MPL-2.0",
    "mozilla public license 2.0" => "MPL-2.0"
  }

  @doc "The default allowed licences: #{Enum.join(@default, ", ")}."
  @spec default() :: [String.t()]
  def default, do: @default

  @doc "The SPDX identifier for a loosely written licence name (unchanged when unknown)."
  @spec normalize(String.t()) :: String.t()
  def normalize(name) when is_binary(name) do
    trimmed = String.trim(name)
    Map.get(@aliases, String.downcase(trimmed), trimmed)
  end

  @doc """
  `:ok` when `licenses` (as stated by the package) includes an allowed one,
  else `{:error, {:license, detail}}`.
  """
  @spec check([term()], [String.t()]) :: :ok | {:error, {:license, String.t()}}
  def check(licenses, allowed) do
    allowed = MapSet.new(allowed, &String.downcase(normalize(&1)))
    names = if is_list(licenses), do: Enum.filter(licenses, &is_binary/1), else: []

    cond do
      names == [] ->
        {:error, {:license, "no licence stated"}}

      Enum.any?(names, &expression_allowed?(&1, allowed)) ->
        :ok

      true ->
        {:error, {:license, "licence #{Enum.join(names, ", ")} is not in the allowed list"}}
    end
  end

  defp expression_allowed?(expression, allowed) do
    expression
    |> String.replace(["(", ")"], " ")
    |> String.split(~r/\s+OR\s+/i)
    |> Enum.any?(fn alternative ->
      alternative
      |> String.split(~r/\s+AND\s+/i)
      |> Enum.all?(&MapSet.member?(allowed, String.downcase(normalize(&1))))
    end)
  end

  @doc """
  Guesses the SPDX identifier of a licence text (a `LICENSE` file), or `nil`.
  Only the common licences are recognised.
  """
  @spec detect(String.t()) :: String.t() | nil
  def detect(text) do
    text = text |> String.slice(0, 20_000) |> String.replace(~r/\s+/, " ")

    cond do
      text =~ ~r/Apache License,? Version 2\.0/i ->
        "Apache-2.0"

      text =~ ~r/Mozilla Public License,? (Version|v\.?) ?2\.0/i ->
        "MPL-2.0"

      text =~ ~r/GNU AFFERO GENERAL PUBLIC LICENSE/i ->
        "AGPL-3.0"

      text =~ ~r/GNU LESSER GENERAL PUBLIC LICENSE/i ->
        "LGPL"

      text =~ ~r/GNU GENERAL PUBLIC LICENSE/i ->
        "GPL"

      text =~ ~r/This is free and unencumbered software released into the public domain/i ->
        "Unlicense"

      text =~ ~r/Permission is hereby granted, free of charge/i ->
        "MIT"

      text =~
        ~r/Permission to use, copy, modify, and\/or distribute this software for any purpose with or without fee is hereby granted\.? THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS/i and
          not (text =~ ~r/above copyright notice/i) ->
        "0BSD"

      text =~ ~r/Permission to use, copy, modify, and\/or distribute this software/i ->
        "ISC"

      text =~ ~r/Neither the name of/i and
          text =~ ~r/Redistribution and use in source and binary forms/i ->
        "BSD-3-Clause"

      text =~ ~r/Redistribution and use in source and binary forms/i ->
        "BSD-2-Clause"

      true ->
        nil
    end
  end
end
