defmodule DevstralElixir.Scrape.Gzip do
  @moduledoc """
  Streams a gzip file into a plain file with a cap on the output, so a small
  "gzip bomb" cannot fill the disk or memory: decompression stops as soon as
  the output passes `max_bytes`.
  """

  @chunk 64 * 1024

  @doc """
  Decompresses `source` into `dest` and returns the decompressed size.
  Errors: `{:too_large, detail}`, `{:truncated, detail}` (the stream ends
  early), `{:bad_archive, detail}` (not gzip).
  """
  @spec gunzip(Path.t(), Path.t(), non_neg_integer()) ::
          {:ok, non_neg_integer()} | {:error, {atom(), String.t()}}
  def gunzip(source, dest, max_bytes) do
    z = :zlib.open()

    try do
      # 16 + 15: expect a gzip header, allow the largest window.
      :ok = :zlib.inflateInit(z, 31)

      File.open!(source, [:read, :binary, :raw], fn input ->
        File.open!(dest, [:write, :binary, :raw], fn output ->
          loop(z, input, output, 0, max_bytes)
        end)
      end)
    catch
      :error, :data_error -> {:error, {:bad_archive, "not a valid gzip stream"}}
    after
      :zlib.close(z)
    end
  end

  defp loop(z, input, output, written, max) do
    case :file.read(input, @chunk) do
      {:ok, data} ->
        with {:ok, written} <- drain(z, data, output, written, max),
             do: loop(z, input, output, written, max)

      :eof ->
        # inflateEnd raises when the stream never reached its end.
        try do
          :zlib.inflateEnd(z)
          {:ok, written}
        catch
          :error, _ -> {:error, {:truncated, "gzip stream ends early after #{written} bytes"}}
        end
    end
  end

  # safeInflate hands output back in bounded pieces, so the cap is checked
  # before a huge expansion is ever held in memory.
  defp drain(z, data, output, written, max) do
    case :zlib.safeInflate(z, data) do
      {status, out} when status in [:continue, :finished] ->
        written = written + IO.iodata_length(out)

        if written > max do
          {:error, {:too_large, "uncompressed archive is over the #{max}-byte cap"}}
        else
          :ok = :file.write(output, out)
          if status == :continue, do: drain(z, [], output, written, max), else: {:ok, written}
        end

      {:need_dictionary, _, _} ->
        {:error, {:bad_archive, "gzip stream needs a preset dictionary"}}
    end
  end
end
