"""EstimatorSpec validation rules (tf.estimator 2.15 semantics, reference section 8)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bridge.estimator_spec import EstimatorSpec, validate_eval_metric_names
from bridge.export_output import ClassificationOutput, PredictOutput, RegressionOutput
from bridge.hooks import SessionRunHook
from bridge.mode_keys import ModeKeys

TRAIN, EVAL, PREDICT = ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT


def _loss():
    return tf.constant(1.0)


def _train_spec(**kwargs):
    kwargs.setdefault("loss", _loss())
    kwargs.setdefault("train_op", tf.constant(0))
    return EstimatorSpec(TRAIN, **kwargs)


class _HostMetricOp:
    __bridge_metric_op__ = True


# --- ModeKeys and the tuple itself --------------------------------------------


def test_mode_keys_values():
    assert (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT) == ("train", "eval", "infer")


def test_fields_in_tf_estimator_order():
    assert EstimatorSpec._fields == (
        "mode", "predictions", "loss", "train_op", "eval_metric_ops", "export_outputs",
        "training_chief_hooks", "training_hooks", "scaffold", "evaluation_hooks",
        "prediction_hooks",
    )
    assert isinstance(_train_spec(), tuple)


def test_mode_is_not_validated():
    spec = EstimatorSpec("anything")
    assert spec.mode == "anything"
    assert spec.predictions == {} and spec.loss is None and spec.train_op is None


# --- required fields per mode ---------------------------------------------------


def test_train_requires_train_op():
    with pytest.raises(ValueError, match="Missing train_op"):
        EstimatorSpec(TRAIN, loss=_loss())


def test_train_requires_loss():
    with pytest.raises(ValueError, match="Missing loss"):
        EstimatorSpec(TRAIN, train_op=tf.constant(0))


def test_eval_requires_loss_but_not_train_op():
    with pytest.raises(ValueError, match="Missing loss"):
        EstimatorSpec(EVAL)
    spec = EstimatorSpec(EVAL, loss=_loss())
    assert spec.train_op is None


def test_predict_requires_predictions_only():
    with pytest.raises(ValueError, match="Missing predictions"):
        EstimatorSpec(PREDICT)
    spec = EstimatorSpec(PREDICT, predictions=tf.constant([1.0]))
    assert spec.loss is None and spec.train_op is None


# --- loss -------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [1.0, np.float32(1.0), np.array(1.0)], ids=["float", "np_scalar", "ndarray"])
def test_loss_must_be_tensor(loss):
    with pytest.raises(TypeError, match="loss must be Tensor"):
        EstimatorSpec(EVAL, loss=loss)


def test_loss_must_have_one_element():
    with pytest.raises(ValueError, match="Loss must be scalar"):
        EstimatorSpec(EVAL, loss=tf.constant([1.0, 2.0]))


@pytest.mark.parametrize("shape", [[1], [1, 1]])
def test_one_element_loss_is_reshaped_to_scalar(shape):
    spec = EstimatorSpec(EVAL, loss=tf.ones(shape))
    assert spec.loss.shape == tf.TensorShape([])
    assert float(spec.loss) == 1.0


def test_scalar_loss_is_kept_as_is():
    loss = _loss()
    assert EstimatorSpec(EVAL, loss=loss).loss is loss


def test_loss_of_unknown_shape_is_accepted_in_a_graph():
    with tf.Graph().as_default():
        unknown_rank = tf.compat.v1.placeholder(tf.float32, shape=None)
        assert EstimatorSpec(EVAL, loss=unknown_rank).loss is unknown_rank
        unknown_dim = tf.compat.v1.placeholder(tf.float32, shape=[None])
        spec = EstimatorSpec(EVAL, loss=unknown_dim)
        assert spec.loss.shape == tf.TensorShape([])


# --- train_op ----------------------------------------------------------------------


def test_train_op_accepts_tensor_and_operation():
    t = tf.constant(0)
    assert _train_spec(train_op=t).train_op is t
    with tf.Graph().as_default():
        op = tf.no_op()
        assert EstimatorSpec(TRAIN, loss=tf.constant(1.0), train_op=op).train_op is op


@pytest.mark.parametrize("bad", ["step", 3, [tf.constant(0)]], ids=["str", "int", "list"])
def test_train_op_must_be_operation_or_tensor(bad):
    with pytest.raises(TypeError, match="train_op must be Operation or Tensor"):
        _train_spec(train_op=bad)


def test_graph_variable_train_op_becomes_its_op():
    with tf.Graph().as_default():
        var = tf.Variable(0, name="step")
        spec = EstimatorSpec(TRAIN, loss=tf.constant(1.0), train_op=var)
        assert isinstance(spec.train_op, tf.Operation)
        assert spec.train_op is var.op


def test_eager_variable_train_op_becomes_a_read():
    var = tf.Variable(7)
    spec = _train_spec(train_op=var)
    assert isinstance(spec.train_op, tf.Tensor) and not isinstance(spec.train_op, tf.Variable)
    assert int(spec.train_op) == 7


def test_keras_variable_train_op_is_accepted():
    var = keras.Variable(3, dtype="int64")
    spec = _train_spec(train_op=var)
    assert int(spec.train_op) == 3


# --- predictions -----------------------------------------------------------------


def test_predictions_tensor_or_dict():
    t = tf.constant([1.0])
    assert EstimatorSpec(PREDICT, predictions=t).predictions is t
    spec = EstimatorSpec(PREDICT, predictions={"a": t})
    assert spec.predictions == {"a": t}


def test_predictions_default_to_empty_dict_outside_predict():
    assert _train_spec().predictions == {}
    assert EstimatorSpec(EVAL, loss=_loss()).predictions == {}


def test_predictions_list_is_rejected():
    with pytest.raises(TypeError, match="predictions must be Tensor"):
        EstimatorSpec(PREDICT, predictions=[tf.constant(1.0)])


def test_predictions_dict_values_must_be_tensors():
    with pytest.raises(TypeError, match=r"predictions\[b\] must be Tensor"):
        EstimatorSpec(PREDICT, predictions={"a": tf.constant(1.0), "b": [1.0]})


# --- eval_metric_ops ------------------------------------------------------------


def test_eval_metric_ops_default_to_empty_dict():
    assert EstimatorSpec(EVAL, loss=_loss()).eval_metric_ops == {}


def test_eval_metric_ops_must_be_dict():
    with pytest.raises(TypeError, match="eval_metric_ops must be a dict"):
        EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops=[(tf.constant(1.0), tf.constant(1.0))])


def test_eval_metric_ops_tuple_is_accepted():
    pair = (tf.constant(1.0), tf.constant(2.0))
    spec = EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops={"m": pair})
    assert spec.eval_metric_ops == {"m": pair}


@pytest.mark.parametrize(
    "value",
    [[tf.constant(1.0), tf.constant(1.0)], (tf.constant(1.0),) * 3, tf.constant(1.0)],
    ids=["list", "3-tuple", "tensor"],
)
def test_eval_metric_ops_values_must_be_pairs(value):
    with pytest.raises(TypeError, match="must be \\(metric_value, update_op\\) tuples.*for key: m"):
        EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops={"m": value})


def test_eval_metric_ops_keras_metric_is_kept_as_object():
    metric = keras.metrics.Mean(name="kmean")
    metric.update_state([1.0, 3.0])
    spec = EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops={"kmean": metric})
    assert spec.eval_metric_ops["kmean"] is metric


def test_eval_metric_ops_host_metric_op_is_accepted():
    op = _HostMetricOp()
    spec = EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops={"auc": op})
    assert spec.eval_metric_ops["auc"] is op


def test_eval_metric_ops_falsy_host_marker_is_rejected():
    op = _HostMetricOp()
    op.__bridge_metric_op__ = False
    with pytest.raises(TypeError, match="Values of eval_metric_ops must be"):
        EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops={"auc": op})


def test_eval_metric_ops_keys_must_be_str():
    with pytest.raises(TypeError, match="eval_metric_ops keys must be str"):
        EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops={1: _HostMetricOp()})


def test_eval_metric_ops_pair_parts_must_be_tensors_in_graph_mode():
    with tf.Graph().as_default():
        with pytest.raises(TypeError, match="must hold Tensors or Operations"):
            EstimatorSpec(EVAL, loss=tf.constant(1.0), eval_metric_ops={"m": (tf.constant(1.0), None)})


def test_reserved_metric_names_are_left_to_the_estimator():
    reserved = {"loss": _HostMetricOp(), "global_step": _HostMetricOp()}
    spec = EstimatorSpec(EVAL, loss=_loss(), eval_metric_ops=reserved)
    assert set(spec.eval_metric_ops) == {"loss", "global_step"}


def test_validate_eval_metric_names():
    validate_eval_metric_names({"accuracy": None})
    with pytest.raises(ValueError, match='Metric with name "loss" is not allowed'):
        validate_eval_metric_names({"loss": None})
    with pytest.raises(ValueError, match="Metric with name `global_step` is not allowed"):
        validate_eval_metric_names({"global_step": None})


# --- export_outputs -------------------------------------------------------------


def test_export_outputs_default_to_predict_output_in_predict():
    preds = {"y": tf.constant([1.0])}
    spec = EstimatorSpec(PREDICT, predictions=preds)
    assert list(spec.export_outputs) == ["serving_default"]
    default = spec.export_outputs["serving_default"]
    assert isinstance(default, PredictOutput)
    assert default.outputs == preds


def test_export_outputs_not_defaulted_or_validated_outside_predict():
    assert _train_spec().export_outputs is None
    odd = ["not", "a", "dict"]
    assert EstimatorSpec(EVAL, loss=_loss(), export_outputs=odd).export_outputs is odd


def test_single_export_output_is_also_serving_default():
    out = RegressionOutput(tf.constant([1.0]))
    given = {"regression": out}
    spec = EstimatorSpec(PREDICT, predictions=tf.constant([1.0]), export_outputs=given)
    assert spec.export_outputs == {"regression": out, "serving_default": out}
    assert given == {"regression": out}  # the caller's dict is left alone


def test_several_export_outputs_need_a_default():
    outs = {
        "regression": RegressionOutput(tf.constant([1.0])),
        "classification": ClassificationOutput(scores=tf.constant([[1.0]])),
    }
    with pytest.raises(ValueError, match="Multiple `export_outputs` were provided"):
        EstimatorSpec(PREDICT, predictions=tf.constant([1.0]), export_outputs=outs)
    outs["serving_default"] = outs["regression"]
    spec = EstimatorSpec(PREDICT, predictions=tf.constant([1.0]), export_outputs=outs)
    assert spec.export_outputs == outs


def test_export_outputs_must_be_dict_in_predict():
    with pytest.raises(TypeError, match="`export_outputs` must be dict"):
        EstimatorSpec(PREDICT, predictions=tf.constant([1.0]), export_outputs=[PredictOutput(tf.constant([1.0]))])


def test_export_outputs_values_must_be_export_outputs():
    with pytest.raises(TypeError, match="Values in `export_outputs` must be ExportOutput objects"):
        EstimatorSpec(PREDICT, predictions=tf.constant([1.0]), export_outputs={"serving_default": tf.constant(1.0)})


# --- hooks --------------------------------------------------------------------------

HOOK_FIELDS = ["training_chief_hooks", "training_hooks", "evaluation_hooks", "prediction_hooks"]


@pytest.mark.parametrize("field", HOOK_FIELDS)
def test_hooks_become_tuples(field):
    hooks = [SessionRunHook(), SessionRunHook()]
    spec = _train_spec(**{field: iter(hooks)})
    assert getattr(spec, field) == tuple(hooks)
    assert _train_spec().__getattribute__(field) == ()


@pytest.mark.parametrize("field", HOOK_FIELDS)
def test_hooks_must_be_session_run_hooks(field):
    with pytest.raises(TypeError, match="All hooks must be SessionRunHook instances"):
        _train_spec(**{field: [SessionRunHook(), object()]})


def test_tf_v1_hooks_are_adapted():
    spec = _train_spec(training_hooks=[tf.compat.v1.train.StopAtStepHook(num_steps=1)])
    from bridge.hooks import StopAtStepHook

    assert isinstance(spec.training_hooks[0], StopAtStepHook)


def test_single_hook_not_in_a_list_is_rejected():
    with pytest.raises(TypeError, match="All hooks must be SessionRunHook instances"):
        _train_spec(training_hooks=SessionRunHook())


# --- scaffold -------------------------------------------------------------------


def test_scaffold_none_is_accepted():
    assert _train_spec().scaffold is None


def test_scaffold_is_kept_and_anything_else_refused():
    scaffold = tf.compat.v1.train.Scaffold()
    assert _train_spec(scaffold=scaffold).scaffold is scaffold  # run by bridge.compat.scaffold
    with pytest.raises(TypeError, match="scaffold must be tf.compat.v1.train.Scaffold"):
        _train_spec(scaffold=object())


# --- default-graph check -------------------------------------------------------


def _other_graph_tensors():
    with tf.Graph().as_default() as other:
        return other, tf.constant(1.0, name="stale"), tf.no_op(name="stale_op")


def test_loss_from_another_graph_is_rejected():
    _, stale, _ = _other_graph_tensors()
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='loss with "stale:0" must be from the default graph'):
            EstimatorSpec(EVAL, loss=stale)


def test_train_op_from_another_graph_is_rejected():
    _, _, stale_op = _other_graph_tensors()
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='train_op with "stale_op" must be from the default graph'):
            EstimatorSpec(TRAIN, loss=tf.constant(1.0), train_op=stale_op)


def test_prediction_from_another_graph_is_rejected():
    _, stale, _ = _other_graph_tensors()
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='prediction values with "p: stale:0" must be from the default graph'):
            EstimatorSpec(PREDICT, predictions={"p": stale})
        with pytest.raises(ValueError, match='prediction values with "stale:0" must be from'):
            EstimatorSpec(PREDICT, predictions=stale)


def test_metric_from_another_graph_is_rejected():
    _, stale, _ = _other_graph_tensors()
    with tf.Graph().as_default():
        pair = (stale, tf.no_op())
        with pytest.raises(ValueError, match='eval_metric_ops with "m: stale:0" must be from the default graph'):
            EstimatorSpec(EVAL, loss=tf.constant(1.0), eval_metric_ops={"m": pair})


def test_variable_from_another_graph_is_rejected_as_train_op():
    with tf.Graph().as_default():
        var = tf.Variable(0, name="old_step")
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='train_op with "old_step:0" must be from the default graph'):
            EstimatorSpec(TRAIN, loss=tf.constant(1.0), train_op=var)


def test_tensors_of_the_default_graph_pass():
    with tf.Graph().as_default() as graph:
        loss = tf.constant([2.0])
        spec = EstimatorSpec(
            TRAIN,
            loss=loss,
            train_op=tf.no_op(),
            predictions={"p": tf.constant([1.0])},
            eval_metric_ops={"m": (tf.constant(1.0), tf.no_op())},
        )
        assert spec.loss.graph is graph


def test_tensors_built_inside_a_tf_function_trace_pass():
    step = keras.Variable(0, dtype="int64")
    seen = {}

    @tf.function(autograph=False)
    def traced():
        graph = tf.compat.v1.get_default_graph()
        loss = tf.reduce_sum(tf.ones([1]))
        spec = EstimatorSpec(
            TRAIN,
            loss=tf.reshape(loss, [1]),
            train_op=step,  # captured variable: read inside the trace
            predictions={"p": tf.ones([2])},
            eval_metric_ops={"m": (loss, tf.identity(loss))},
        )
        seen["graphs"] = (spec.loss.graph is graph, spec.train_op.graph is graph)
        return spec.loss

    assert float(traced()) == 1.0
    assert seen["graphs"] == (True, True)


def test_eager_tensor_captured_from_outside_a_trace_is_rejected():
    cached = tf.constant(1.0)

    @tf.function(autograph=False)
    def traced():
        return EstimatorSpec(EVAL, loss=cached).loss

    with pytest.raises(ValueError, match="must be from the default graph"):
        traced()


def test_eager_mode_skips_the_graph_check():
    _, stale, _ = _other_graph_tensors()
    spec = EstimatorSpec(EVAL, loss=stale, predictions={"p": stale})
    assert spec.loss is stale and spec.predictions["p"] is stale


# --- _replace ---------------------------------------------------------------------


def test_replace_returns_a_revalidated_spec():
    spec = EstimatorSpec(EVAL, loss=_loss())
    replaced = spec._replace(loss=tf.constant([3.0]))
    assert isinstance(replaced, EstimatorSpec)
    assert replaced.loss.shape == tf.TensorShape([]) and float(replaced.loss) == 3.0
    with pytest.raises(TypeError, match="loss must be Tensor"):
        spec._replace(loss=3.0)


def test_replace_cannot_change_mode():
    spec = EstimatorSpec(EVAL, loss=_loss())
    with pytest.raises(ValueError, match="mode of EstimatorSpec cannot be changed"):
        spec._replace(mode=TRAIN)
    assert spec._replace(mode=EVAL).mode == EVAL


def test_replace_keeps_predict_defaults_stable():
    spec = EstimatorSpec(PREDICT, predictions=tf.constant([1.0]))
    again = spec._replace(prediction_hooks=[SessionRunHook()])
    assert again.export_outputs == spec.export_outputs
    assert len(again.prediction_hooks) == 1


def test_replace_rejects_unknown_fields():
    with pytest.raises(ValueError, match="no field"):
        EstimatorSpec(EVAL, loss=_loss())._replace(los=_loss())
