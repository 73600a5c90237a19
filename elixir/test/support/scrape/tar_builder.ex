defmodule DevstralElixir.Test.Scrape.TarBuilder do
  @moduledoc """
  Writes ustar archives byte by byte, so tests can build any archive,
  hostile ones included (absolute names, `..`, symlinks, hard links, device
  files, truncation), which `:erl_tar` refuses to create.

  Entries:
    * `{:file, name, content}` and `{:file, name, content, mode}`
    * `{:dir, name}`
    * `{:symlink, name, target}` and `{:hardlink, name, target}`
    * `{:char, name}` (a character device)
    * `{:pax_global, comment}` (what `git archive` puts first)
  """

  import Bitwise

  @type entry ::
          {:file, String.t(), iodata()}
          | {:file, String.t(), iodata(), non_neg_integer()}
          | {:dir, String.t()}
          | {:symlink, String.t(), String.t()}
          | {:hardlink, String.t(), String.t()}
          | {:char, String.t()}
          | {:pax_global, String.t()}

  @doc "An uncompressed tar archive of `entries`, ending with two zero blocks."
  @spec tar([entry()]) :: binary()
  def tar(entries) do
    IO.iodata_to_binary([Enum.map(entries, &entry/1), <<0::size(1024 * 8)>>])
  end

  @doc "A gzip-compressed tar archive of `entries`."
  @spec tgz([entry()]) :: binary()
  def tgz(entries), do: :zlib.gzip(tar(entries))

  @doc "The files under `dir` (recursively) as `{:file, prefix <> relative, content}` entries."
  @spec dir_entries(Path.t(), String.t()) :: [entry()]
  def dir_entries(dir, prefix \\ "") do
    dir
    |> Path.join("**")
    |> Path.wildcard(match_dot: true)
    |> Enum.filter(&File.regular?/1)
    |> Enum.sort()
    |> Enum.map(&{:file, prefix <> Path.relative_to(&1, dir), File.read!(&1)})
  end

  defp entry({:file, name, content}), do: entry({:file, name, content, 0o644})

  defp entry({:file, name, content, mode}) do
    content = IO.iodata_to_binary(content)
    [header(name, ?0, byte_size(content), mode, ""), pad(content)]
  end

  defp entry({:dir, name}), do: header(name, ?5, 0, 0o755, "")
  defp entry({:symlink, name, target}), do: header(name, ?2, 0, 0o777, target)
  defp entry({:hardlink, name, target}), do: header(name, ?1, 0, 0o644, target)
  defp entry({:char, name}), do: header(name, ?3, 0, 0o644, "")

  defp entry({:pax_global, comment}) do
    record = pax_record("comment", comment)
    [header("pax_global_header", ?g, byte_size(record), 0o666, ""), pad(record)]
  end

  defp pax_record(key, value) do
    body = " #{key}=#{value}\n"
    len = byte_size(body)
    # The length prefix counts itself, so find the fixed point.
    size =
      Enum.find(1..10, fn digits -> String.length(Integer.to_string(len + digits)) == digits end)

    "#{len + size}#{body}"
  end

  defp pad(data) do
    rem = rem(byte_size(data), 512)
    if rem == 0, do: data, else: [data, :binary.copy(<<0>>, 512 - rem)]
  end

  defp header(name, type, size, mode, linkname) do
    if byte_size(name) > 100, do: raise(ArgumentError, "tar name too long: #{name}")

    fields = [
      field(name, 100),
      octal(mode, 8),
      octal(1000, 8),
      octal(1000, 8),
      octal(size, 12),
      octal(1_700_000_000, 12),
      "        ",
      <<type>>,
      field(linkname, 100),
      "ustar\0",
      "00",
      field("user", 32),
      field("user", 32),
      octal(0, 8),
      octal(0, 8),
      field("", 155),
      field("", 12)
    ]

    block = IO.iodata_to_binary(fields)
    512 = byte_size(block)
    sum = for <<byte <- block>>, reduce: 0, do: (acc -> acc + byte)
    checksum = String.pad_leading(Integer.to_string(sum &&& 0o777777, 8), 6, "0") <> <<0, ?\s>>
    <<before::binary-size(148), _::binary-size(8), rest::binary>> = block
    <<before::binary, checksum::binary, rest::binary>>
  end

  defp field(value, width), do: value <> :binary.copy(<<0>>, width - byte_size(value))

  defp octal(value, width) do
    String.pad_leading(Integer.to_string(value, 8), width - 1, "0") <> <<0>>
  end
end
