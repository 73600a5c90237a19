from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_CANCELLED: FinishReason

class PortFrame(_message.Message):
    __slots__ = ("call_id", "method", "kind", "payload", "status_code", "message")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[PortFrame.Kind]
        REQUEST: _ClassVar[PortFrame.Kind]
        STREAM_ITEM: _ClassVar[PortFrame.Kind]
        END: _ClassVar[PortFrame.Kind]
        ERROR: _ClassVar[PortFrame.Kind]
        CANCEL: _ClassVar[PortFrame.Kind]
    KIND_UNSPECIFIED: PortFrame.Kind
    REQUEST: PortFrame.Kind
    STREAM_ITEM: PortFrame.Kind
    END: PortFrame.Kind
    ERROR: PortFrame.Kind
    CANCEL: PortFrame.Kind
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    method: str
    kind: PortFrame.Kind
    payload: bytes
    status_code: int
    message: str
    def __init__(self, call_id: _Optional[int] = ..., method: _Optional[str] = ..., kind: _Optional[_Union[PortFrame.Kind, str]] = ..., payload: _Optional[bytes] = ..., status_code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("model", "version", "uptime_ms", "backends", "device", "pid", "state", "reason")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[HealthResponse.Status]
        STARTING: _ClassVar[HealthResponse.Status]
        READY: _ClassVar[HealthResponse.Status]
        FAILED: _ClassVar[HealthResponse.Status]
    STATUS_UNSPECIFIED: HealthResponse.Status
    STARTING: HealthResponse.Status
    READY: HealthResponse.Status
    FAILED: HealthResponse.Status
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_MS_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    version: str
    uptime_ms: int
    backends: _containers.RepeatedScalarFieldContainer[str]
    device: str
    pid: int
    state: HealthResponse.Status
    reason: str
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., version: _Optional[str] = ..., uptime_ms: _Optional[int] = ..., backends: _Optional[_Iterable[str]] = ..., device: _Optional[str] = ..., pid: _Optional[int] = ..., state: _Optional[_Union[HealthResponse.Status, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("model", "backend", "device", "dtype", "adapter")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    model: str
    backend: str
    device: str
    dtype: str
    adapter: str
    def __init__(self, model: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., adapter: _Optional[str] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class FimTokens(_message.Message):
    __slots__ = ("prefix", "suffix", "middle")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SUFFIX_FIELD_NUMBER: _ClassVar[int]
    MIDDLE_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    suffix: str
    middle: str
    def __init__(self, prefix: _Optional[str] = ..., suffix: _Optional[str] = ..., middle: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "path", "backend", "device", "dtype", "context_length", "parameters", "fim", "has_chat_template", "active_adapter", "loaded_adapters")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    FIM_FIELD_NUMBER: _ClassVar[int]
    HAS_CHAT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    LOADED_ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    path: str
    backend: str
    device: str
    dtype: str
    context_length: int
    parameters: int
    fim: FimTokens
    has_chat_template: bool
    active_adapter: str
    loaded_adapters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., path: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., context_length: _Optional[int] = ..., parameters: _Optional[int] = ..., fim: _Optional[_Union[FimTokens, _Mapping]] = ..., has_chat_template: _Optional[bool] = ..., active_adapter: _Optional[str] = ..., loaded_adapters: _Optional[_Iterable[str]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class ChatPrompt(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ...) -> None: ...

class FimPrompt(_message.Message):
    __slots__ = ("prefix", "suffix")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SUFFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    suffix: str
    def __init__(self, prefix: _Optional[str] = ..., suffix: _Optional[str] = ...) -> None: ...

class SamplingParams(_message.Message):
    __slots__ = ("max_tokens", "temperature", "top_p", "seed", "stop")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "chat", "fim", "params", "request_id", "retrieval")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    FIM_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    chat: ChatPrompt
    fim: FimPrompt
    params: SamplingParams
    request_id: str
    retrieval: Retrieval
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., chat: _Optional[_Union[ChatPrompt, _Mapping]] = ..., fim: _Optional[_Union[FimPrompt, _Mapping]] = ..., params: _Optional[_Union[SamplingParams, _Mapping]] = ..., request_id: _Optional[str] = ..., retrieval: _Optional[_Union[Retrieval, _Mapping]] = ...) -> None: ...

class Retrieval(_message.Message):
    __slots__ = ("collection", "top_k", "min_score", "mode")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    top_k: int
    min_score: float
    mode: str
    def __init__(self, collection: _Optional[str] = ..., top_k: _Optional[int] = ..., min_score: _Optional[float] = ..., mode: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens", "time_to_first_token_us")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_US_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    time_to_first_token_us: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., time_to_first_token_us: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "token_ids", "finish_reason", "usage", "model", "sources")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: FinishReason
    usage: Usage
    model: str
    sources: _containers.RepeatedCompositeFieldContainer[MemoryHit]
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., model: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[MemoryHit, _Mapping]]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dimensions", "model", "prompt_tokens")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dimensions: int
    model: str
    prompt_tokens: int
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dimensions: _Optional[int] = ..., model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class MemoryDocument(_message.Message):
    __slots__ = ("text", "source", "kind", "timestamp")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    text: str
    source: str
    kind: str
    timestamp: str
    def __init__(self, text: _Optional[str] = ..., source: _Optional[str] = ..., kind: _Optional[str] = ..., timestamp: _Optional[str] = ...) -> None: ...

class UpsertDocumentsRequest(_message.Message):
    __slots__ = ("collection", "documents")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    documents: _containers.RepeatedCompositeFieldContainer[MemoryDocument]
    def __init__(self, collection: _Optional[str] = ..., documents: _Optional[_Iterable[_Union[MemoryDocument, _Mapping]]] = ...) -> None: ...

class UpsertDocumentsResponse(_message.Message):
    __slots__ = ("added", "existing")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    added: int
    existing: int
    def __init__(self, added: _Optional[int] = ..., existing: _Optional[int] = ...) -> None: ...

class MemoryFilter(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SearchMemoryRequest(_message.Message):
    __slots__ = ("query", "collection", "top_k", "min_score", "filters", "mode")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    query: str
    collection: str
    top_k: int
    min_score: float
    filters: _containers.RepeatedCompositeFieldContainer[MemoryFilter]
    mode: str
    def __init__(self, query: _Optional[str] = ..., collection: _Optional[str] = ..., top_k: _Optional[int] = ..., min_score: _Optional[float] = ..., filters: _Optional[_Iterable[_Union[MemoryFilter, _Mapping]]] = ..., mode: _Optional[str] = ...) -> None: ...

class MemoryHit(_message.Message):
    __slots__ = ("source", "score", "text", "kind", "timestamp", "id")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    source: str
    score: float
    text: str
    kind: str
    timestamp: str
    id: str
    def __init__(self, source: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., kind: _Optional[str] = ..., timestamp: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class SearchMemoryResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[MemoryHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[MemoryHit, _Mapping]]] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("collection", "source")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    source: str
    def __init__(self, collection: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class MemoryStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CollectionStats(_message.Message):
    __slots__ = ("name", "points", "dimensions", "sources")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    points: int
    dimensions: int
    sources: int
    def __init__(self, name: _Optional[str] = ..., points: _Optional[int] = ..., dimensions: _Optional[int] = ..., sources: _Optional[int] = ...) -> None: ...

class MemoryStatsResponse(_message.Message):
    __slots__ = ("collections", "location", "embed_model")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    EMBED_MODEL_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionStats]
    location: str
    embed_model: str
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionStats, _Mapping]]] = ..., location: _Optional[str] = ..., embed_model: _Optional[str] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("job_id", "paths", "collection")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    collection: str
    def __init__(self, job_id: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., collection: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "kind", "phase", "message", "step", "total_steps", "elapsed_ms", "eta_ms", "metrics", "artifact_path")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[JobEvent.Kind]
        PROGRESS: _ClassVar[JobEvent.Kind]
        LOG: _ClassVar[JobEvent.Kind]
        METRICS: _ClassVar[JobEvent.Kind]
        CHECKPOINT: _ClassVar[JobEvent.Kind]
        COMPLETED: _ClassVar[JobEvent.Kind]
        FAILED: _ClassVar[JobEvent.Kind]
        CANCELLED: _ClassVar[JobEvent.Kind]
    KIND_UNSPECIFIED: JobEvent.Kind
    PROGRESS: JobEvent.Kind
    LOG: JobEvent.Kind
    METRICS: JobEvent.Kind
    CHECKPOINT: JobEvent.Kind
    COMPLETED: JobEvent.Kind
    FAILED: JobEvent.Kind
    CANCELLED: JobEvent.Kind
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    ETA_MS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_PATH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobEvent.Kind
    phase: str
    message: str
    step: int
    total_steps: int
    elapsed_ms: int
    eta_ms: int
    metrics: _containers.ScalarMap[str, float]
    artifact_path: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobEvent.Kind, str]] = ..., phase: _Optional[str] = ..., message: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., elapsed_ms: _Optional[int] = ..., eta_ms: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., artifact_path: _Optional[str] = ...) -> None: ...

class BuildDatasetRequest(_message.Message):
    __slots__ = ("job_id", "inputs", "out_dir", "config_json", "seed", "eval_files")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUT_DIR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EVAL_FILES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    out_dir: str
    config_json: str
    seed: int
    eval_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., out_dir: _Optional[str] = ..., config_json: _Optional[str] = ..., seed: _Optional[int] = ..., eval_files: _Optional[_Iterable[str]] = ...) -> None: ...

class LoraConfig(_message.Message):
    __slots__ = ("r", "alpha", "dropout", "target_modules", "train_embeddings", "embeddings_learning_rate")
    R_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    r: int
    alpha: float
    dropout: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    train_embeddings: bool
    embeddings_learning_rate: float
    def __init__(self, r: _Optional[int] = ..., alpha: _Optional[float] = ..., dropout: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., train_embeddings: _Optional[bool] = ..., embeddings_learning_rate: _Optional[float] = ...) -> None: ...

class TrainConfig(_message.Message):
    __slots__ = ("epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation_steps", "max_seq_length", "warmup_ratio", "max_grad_norm", "save_steps", "eval_steps", "early_stopping_patience", "early_stopping_threshold", "quantization", "gradient_checkpointing", "packing", "regularizer", "regularizer_weight", "seed", "lora", "save_minutes")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_ACCUMULATION_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LENGTH_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RATIO_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    SAVE_STEPS_FIELD_NUMBER: _ClassVar[int]
    EVAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_PATIENCE_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_CHECKPOINTING_FIELD_NUMBER: _ClassVar[int]
    PACKING_FIELD_NUMBER: _ClassVar[int]
    REGULARIZER_FIELD_NUMBER: _ClassVar[int]
    REGULARIZER_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    SAVE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    max_steps: int
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    warmup_ratio: float
    max_grad_norm: float
    save_steps: int
    eval_steps: int
    early_stopping_patience: int
    early_stopping_threshold: float
    quantization: str
    gradient_checkpointing: bool
    packing: bool
    regularizer: str
    regularizer_weight: float
    seed: int
    lora: LoraConfig
    save_minutes: float
    def __init__(self, epochs: _Optional[int] = ..., max_steps: _Optional[int] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., gradient_accumulation_steps: _Optional[int] = ..., max_seq_length: _Optional[int] = ..., warmup_ratio: _Optional[float] = ..., max_grad_norm: _Optional[float] = ..., save_steps: _Optional[int] = ..., eval_steps: _Optional[int] = ..., early_stopping_patience: _Optional[int] = ..., early_stopping_threshold: _Optional[float] = ..., quantization: _Optional[str] = ..., gradient_checkpointing: _Optional[bool] = ..., packing: _Optional[bool] = ..., regularizer: _Optional[str] = ..., regularizer_weight: _Optional[float] = ..., seed: _Optional[int] = ..., lora: _Optional[_Union[LoraConfig, _Mapping]] = ..., save_minutes: _Optional[float] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("job_id", "base_model", "dataset_dir", "stage", "output_dir", "config", "resume", "init_adapter", "general_eval_path", "validate_only", "eval_path")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIR_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    INIT_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    GENERAL_EVAL_PATH_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    EVAL_PATH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    base_model: str
    dataset_dir: str
    stage: int
    output_dir: str
    config: TrainConfig
    resume: bool
    init_adapter: str
    general_eval_path: str
    validate_only: bool
    eval_path: str
    def __init__(self, job_id: _Optional[str] = ..., base_model: _Optional[str] = ..., dataset_dir: _Optional[str] = ..., stage: _Optional[int] = ..., output_dir: _Optional[str] = ..., config: _Optional[_Union[TrainConfig, _Mapping]] = ..., resume: _Optional[bool] = ..., init_adapter: _Optional[str] = ..., general_eval_path: _Optional[str] = ..., validate_only: _Optional[bool] = ..., eval_path: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("job_id", "model", "adapter", "loss_datasets", "benchmarks", "max_problems", "samples_per_problem", "params", "output_path", "max_loss_tokens", "completions_path", "timeout_s", "max_workers", "fim_datasets", "output_dir", "max_fim_examples", "metrics_path")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    LOSS_DATASETS_FIELD_NUMBER: _ClassVar[int]
    BENCHMARKS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_LOSS_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_PATH_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    FIM_DATASETS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    MAX_FIM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    METRICS_PATH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model: str
    adapter: str
    loss_datasets: _containers.RepeatedScalarFieldContainer[str]
    benchmarks: _containers.RepeatedScalarFieldContainer[str]
    max_problems: int
    samples_per_problem: int
    params: SamplingParams
    output_path: str
    max_loss_tokens: int
    completions_path: str
    timeout_s: float
    max_workers: int
    fim_datasets: _containers.RepeatedScalarFieldContainer[str]
    output_dir: str
    max_fim_examples: int
    metrics_path: str
    def __init__(self, job_id: _Optional[str] = ..., model: _Optional[str] = ..., adapter: _Optional[str] = ..., loss_datasets: _Optional[_Iterable[str]] = ..., benchmarks: _Optional[_Iterable[str]] = ..., max_problems: _Optional[int] = ..., samples_per_problem: _Optional[int] = ..., params: _Optional[_Union[SamplingParams, _Mapping]] = ..., output_path: _Optional[str] = ..., max_loss_tokens: _Optional[int] = ..., completions_path: _Optional[str] = ..., timeout_s: _Optional[float] = ..., max_workers: _Optional[int] = ..., fim_datasets: _Optional[_Iterable[str]] = ..., output_dir: _Optional[str] = ..., max_fim_examples: _Optional[int] = ..., metrics_path: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class AdapterInfo(_message.Message):
    __slots__ = ("name", "path", "base_model", "stage", "run", "active", "merged", "metrics_json", "rank", "created_at", "loaded", "gate_passed", "promoted", "gate_json", "previous", "smoke_test")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    GATE_PASSED_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    GATE_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    SMOKE_TEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    base_model: str
    stage: int
    run: str
    active: bool
    merged: bool
    metrics_json: str
    rank: int
    created_at: str
    loaded: bool
    gate_passed: bool
    promoted: bool
    gate_json: str
    previous: bool
    smoke_test: SmokeTest
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., base_model: _Optional[str] = ..., stage: _Optional[int] = ..., run: _Optional[str] = ..., active: _Optional[bool] = ..., merged: _Optional[bool] = ..., metrics_json: _Optional[str] = ..., rank: _Optional[int] = ..., created_at: _Optional[str] = ..., loaded: _Optional[bool] = ..., gate_passed: _Optional[bool] = ..., promoted: _Optional[bool] = ..., gate_json: _Optional[str] = ..., previous: _Optional[bool] = ..., smoke_test: _Optional[_Union[SmokeTest, _Mapping]] = ...) -> None: ...

class SmokeTest(_message.Message):
    __slots__ = ("generated", "parsed", "prompts", "require_parse", "note")
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    PARSED_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_PARSE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    generated: bool
    parsed: int
    prompts: int
    require_parse: bool
    note: str
    def __init__(self, generated: _Optional[bool] = ..., parsed: _Optional[int] = ..., prompts: _Optional[int] = ..., require_parse: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class ListAdaptersRequest(_message.Message):
    __slots__ = ("root",)
    ROOT_FIELD_NUMBER: _ClassVar[int]
    root: str
    def __init__(self, root: _Optional[str] = ...) -> None: ...

class ListAdaptersResponse(_message.Message):
    __slots__ = ("adapters", "active", "previous", "base_model")
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    adapters: _containers.RepeatedCompositeFieldContainer[AdapterInfo]
    active: str
    previous: str
    base_model: str
    def __init__(self, adapters: _Optional[_Iterable[_Union[AdapterInfo, _Mapping]]] = ..., active: _Optional[str] = ..., previous: _Optional[str] = ..., base_model: _Optional[str] = ...) -> None: ...

class ActivateAdapterRequest(_message.Message):
    __slots__ = ("adapter",)
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    adapter: str
    def __init__(self, adapter: _Optional[str] = ...) -> None: ...

class ActivateAdapterResponse(_message.Message):
    __slots__ = ("model", "active", "previous", "smoke_test")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    SMOKE_TEST_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    active: str
    previous: str
    smoke_test: SmokeTest
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., active: _Optional[str] = ..., previous: _Optional[str] = ..., smoke_test: _Optional[_Union[SmokeTest, _Mapping]] = ...) -> None: ...

class RollbackAdapterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
