defmodule DevstralElixir.Proto.Wire do
  @moduledoc """
  The protobuf wire format: the primitive encoders and decoders that
  `DevstralElixir.Proto.Message` is built on.

  Encoders return iodata or binaries and raise nothing on valid input.
  Decoders take a binary and return `{:ok, value, rest}` or
  `{:error, reason}`; they never raise on malformed input.

  Numbers follow the protobuf conventions:

    * `int32`, `int64` and enum values are varints of their 64-bit two's
      complement, so every negative number takes 10 bytes;
    * `sint32`/`sint64` are zigzag varints; `fixed*`/`sfixed*` are little-endian;
    * floats and doubles are IEEE 754 little-endian. The BEAM has no infinities
      or NaN, so those decode to the atoms `:infinity`, `:negative_infinity`
      and `:nan`, and the encoders accept the same atoms.

  See <https://protobuf.dev/programming-guides/encoding/>.
  """

  import Bitwise

  @typedoc "The six wire types; 3 and 4 are the deprecated group markers."
  @type wire_type :: 0..5
  @typedoc "A float or double as Elixir sees it."
  @type float_value :: float() | :infinity | :negative_infinity | :nan
  @type result(value) :: {:ok, value, binary()} | {:error, String.t()}

  @varint 0
  @fixed64 1
  @length_delimited 2
  @start_group 3
  @end_group 4
  @fixed32 5

  @mask64 0xFFFF_FFFF_FFFF_FFFF
  @mask32 0xFFFF_FFFF
  # Protobuf implementations refuse to nest deeper than this (Python: 100).
  @max_depth 100

  @doc "The wire type constants, by name."
  @spec wire_type(:varint | :fixed64 | :length_delimited | :start_group | :end_group | :fixed32) ::
          wire_type()
  def wire_type(:varint), do: @varint
  def wire_type(:fixed64), do: @fixed64
  def wire_type(:length_delimited), do: @length_delimited
  def wire_type(:start_group), do: @start_group
  def wire_type(:end_group), do: @end_group
  def wire_type(:fixed32), do: @fixed32

  # ---------------------------------------------------------------------------
  # Varints
  # ---------------------------------------------------------------------------

  @doc """
  Encodes an integer as a varint. Negative numbers are encoded as their 64-bit
  two's complement (10 bytes), as `int32`/`int64` require.

      iex> DevstralElixir.Proto.Wire.encode_varint(300)
      <<172, 2>>
      iex> byte_size(DevstralElixir.Proto.Wire.encode_varint(-1))
      10
  """
  @spec encode_varint(integer()) :: binary()
  def encode_varint(n) when is_integer(n) and n >= 0 and n < 128, do: <<n>>
  def encode_varint(n) when is_integer(n) and n >= 0, do: do_encode_varint(n, <<>>)
  def encode_varint(n) when is_integer(n), do: do_encode_varint(n &&& @mask64, <<>>)

  defp do_encode_varint(n, acc) when n < 128, do: <<acc::binary, n>>

  defp do_encode_varint(n, acc),
    do: do_encode_varint(n >>> 7, <<acc::binary, 1::1, n &&& 127::7>>)

  @doc """
  Decodes a varint of at most 10 bytes into an unsigned 64-bit integer (bits
  past the 64th are dropped, as other implementations do).
  """
  @spec decode_varint(binary()) :: result(non_neg_integer())
  def decode_varint(<<0::1, b::7, rest::binary>>), do: {:ok, b, rest}
  def decode_varint(bin) when is_binary(bin), do: decode_varint(bin, 0, 0)

  defp decode_varint(<<1::1, b::7, rest::binary>>, shift, acc) when shift < 63,
    do: decode_varint(rest, shift + 7, acc ||| b <<< shift)

  defp decode_varint(<<0::1, b::7, rest::binary>>, shift, acc) when shift <= 63,
    do: {:ok, (acc ||| b <<< shift) &&& @mask64, rest}

  defp decode_varint(<<>>, _shift, _acc), do: {:error, "truncated varint"}
  defp decode_varint(_bin, _shift, _acc), do: {:error, "varint longer than 10 bytes"}

  @doc "Reinterprets an unsigned 64-bit value as signed (`int64`)."
  @spec to_int64(non_neg_integer()) :: integer()
  def to_int64(n) when n > 0x7FFF_FFFF_FFFF_FFFF, do: n - 0x1_0000_0000_0000_0000
  def to_int64(n), do: n

  @doc "Keeps the low 32 bits of a varint, read as signed (`int32`, enums)."
  @spec to_int32(non_neg_integer()) :: integer()
  def to_int32(n) do
    low = n &&& @mask32
    if low > 0x7FFF_FFFF, do: low - 0x1_0000_0000, else: low
  end

  @doc "Keeps the low 32 bits of a varint (`uint32`)."
  @spec to_uint32(non_neg_integer()) :: non_neg_integer()
  def to_uint32(n), do: n &&& @mask32

  # ---------------------------------------------------------------------------
  # Zigzag
  # ---------------------------------------------------------------------------

  @doc """
  Zigzag-encodes a signed integer (`sint32`/`sint64`): 0, -1, 1, -2 become
  0, 1, 2, 3.
  """
  @spec zigzag_encode(integer()) :: non_neg_integer()
  def zigzag_encode(n) when n >= 0, do: n <<< 1
  def zigzag_encode(n), do: (-n <<< 1) - 1

  @doc "Reverses `zigzag_encode/1`."
  @spec zigzag_decode(non_neg_integer()) :: integer()
  def zigzag_decode(n), do: bxor(n >>> 1, -(n &&& 1))

  # ---------------------------------------------------------------------------
  # Fixed-width numbers
  # ---------------------------------------------------------------------------

  @doc "Encodes a 32-bit little-endian integer (`fixed32` or `sfixed32`)."
  @spec encode_fixed32(integer()) :: binary()
  def encode_fixed32(n), do: <<n::little-32>>

  @doc "Encodes a 64-bit little-endian integer (`fixed64` or `sfixed64`)."
  @spec encode_fixed64(integer()) :: binary()
  def encode_fixed64(n), do: <<n::little-64>>

  @doc "Decodes an unsigned 32-bit little-endian integer."
  @spec decode_fixed32(binary()) :: result(non_neg_integer())
  def decode_fixed32(<<n::little-unsigned-32, rest::binary>>), do: {:ok, n, rest}
  def decode_fixed32(_), do: {:error, "truncated fixed32"}

  @doc "Decodes an unsigned 64-bit little-endian integer."
  @spec decode_fixed64(binary()) :: result(non_neg_integer())
  def decode_fixed64(<<n::little-unsigned-64, rest::binary>>), do: {:ok, n, rest}
  def decode_fixed64(_), do: {:error, "truncated fixed64"}

  @doc """
  Encodes a `float` (IEEE 754 single precision). Integers are converted;
  doubles round to the nearest single, and ones too large become infinities.
  """
  @spec encode_float(float_value() | integer()) :: binary()
  def encode_float(:infinity), do: <<0x7F800000::little-32>>
  def encode_float(:negative_infinity), do: <<0xFF800000::little-32>>
  def encode_float(:nan), do: <<0x7FC00000::little-32>>
  def encode_float(x) when is_integer(x), do: encode_float(x * 1.0)
  def encode_float(x) when is_float(x), do: <<x::little-float-32>>

  @doc "Encodes a `double` (IEEE 754 double precision)."
  @spec encode_double(float_value() | integer()) :: binary()
  def encode_double(:infinity), do: <<0x7FF0000000000000::little-64>>
  def encode_double(:negative_infinity), do: <<0xFFF0000000000000::little-64>>
  def encode_double(:nan), do: <<0x7FF8000000000000::little-64>>
  def encode_double(x) when is_integer(x), do: encode_double(x * 1.0)
  def encode_double(x) when is_float(x), do: <<x::little-float-64>>

  @doc "Decodes a `float`; infinities and NaN become atoms."
  @spec decode_float(binary()) :: result(float_value())
  def decode_float(<<x::little-float-32, rest::binary>>), do: {:ok, x, rest}

  def decode_float(<<bits::little-32, rest::binary>>) do
    # Only the all-ones exponent fails the float match above.
    {:ok, special(bits >>> 31, bits &&& 0x7FFFFF), rest}
  end

  def decode_float(_), do: {:error, "truncated float"}

  @doc "Decodes a `double`; infinities and NaN become atoms."
  @spec decode_double(binary()) :: result(float_value())
  def decode_double(<<x::little-float-64, rest::binary>>), do: {:ok, x, rest}

  def decode_double(<<bits::little-64, rest::binary>>),
    do: {:ok, special(bits >>> 63, bits &&& 0xF_FFFF_FFFF_FFFF), rest}

  def decode_double(_), do: {:error, "truncated double"}

  defp special(_sign, mantissa) when mantissa != 0, do: :nan
  defp special(0, 0), do: :infinity
  defp special(1, 0), do: :negative_infinity

  # ---------------------------------------------------------------------------
  # Tags and length-delimited values
  # ---------------------------------------------------------------------------

  @doc "Encodes a field key: the field number and wire type as one varint."
  @spec encode_tag(pos_integer(), wire_type()) :: binary()
  def encode_tag(number, wire_type), do: encode_varint(number <<< 3 ||| wire_type)

  @doc """
  Decodes a field key. Field number 0 and the wire types 6 and 7 do not exist
  and are errors.
  """
  @spec decode_tag(binary()) :: {:ok, pos_integer(), wire_type(), binary()} | {:error, String.t()}
  def decode_tag(bin) do
    case decode_varint(bin) do
      {:ok, key, _rest} when key > @mask32 -> {:error, "field key #{key} out of range"}
      {:ok, key, _rest} when key >>> 3 == 0 -> {:error, "field number 0"}
      {:ok, key, _rest} when (key &&& 7) > 5 -> {:error, "invalid wire type #{key &&& 7}"}
      {:ok, key, rest} -> {:ok, key >>> 3, key &&& 7, rest}
      {:error, reason} -> {:error, "field key: " <> reason}
    end
  end

  @doc "Prefixes iodata with its length as a varint."
  @spec encode_length_delimited(iodata()) :: iodata()
  def encode_length_delimited(data), do: [encode_varint(IO.iodata_length(data)), data]

  @doc "Decodes a length-prefixed chunk of bytes."
  @spec decode_length_delimited(binary()) :: result(binary())
  def decode_length_delimited(bin) do
    case decode_varint(bin) do
      {:ok, len, rest} when byte_size(rest) >= len ->
        <<chunk::binary-size(len), rest::binary>> = rest
        {:ok, chunk, rest}

      {:ok, len, rest} ->
        {:error, "length #{len} past the end (#{byte_size(rest)} bytes left)"}

      {:error, reason} ->
        {:error, "length: " <> reason}
    end
  end

  # ---------------------------------------------------------------------------
  # Unknown fields
  # ---------------------------------------------------------------------------

  @doc """
  Skips the value of a field with the given number and wire type, returning
  what follows it. Groups (wire type 3) are skipped up to their matching
  end-group key, nested groups included; a stray or mismatched end-group key
  is an error.
  """
  @spec skip_field(pos_integer(), wire_type(), binary()) :: {:ok, binary()} | {:error, String.t()}
  def skip_field(number, wire_type, bin), do: skip(number, wire_type, bin, 0)

  defp skip(_number, @varint, bin, _depth), do: drop_value(decode_varint(bin))
  defp skip(_number, @fixed64, <<_::64, rest::binary>>, _depth), do: {:ok, rest}
  defp skip(_number, @fixed64, _bin, _depth), do: {:error, "truncated fixed64"}
  defp skip(_number, @length_delimited, bin, _depth), do: drop_value(decode_length_delimited(bin))
  defp skip(_number, @fixed32, <<_::32, rest::binary>>, _depth), do: {:ok, rest}
  defp skip(_number, @fixed32, _bin, _depth), do: {:error, "truncated fixed32"}
  defp skip(number, @end_group, _bin, _depth), do: {:error, "unexpected end of group #{number}"}

  defp skip(_number, @start_group, _bin, depth) when depth >= @max_depth,
    do: {:error, "groups nested deeper than #{@max_depth}"}

  defp skip(number, @start_group, bin, depth), do: skip_group(number, bin, depth + 1)

  defp skip_group(number, bin, depth) do
    case decode_tag(bin) do
      {:ok, ^number, @end_group, rest} ->
        {:ok, rest}

      {:ok, other, @end_group, _rest} ->
        {:error, "end of group #{other} inside group #{number}"}

      {:ok, inner, wire_type, rest} ->
        with {:ok, rest} <- skip(inner, wire_type, rest, depth),
             do: skip_group(number, rest, depth)

      {:error, _} when bin == <<>> ->
        {:error, "unterminated group #{number}"}

      {:error, reason} ->
        {:error, reason}
    end
  end

  defp drop_value({:ok, _value, rest}), do: {:ok, rest}
  defp drop_value({:error, reason}), do: {:error, reason}
end
