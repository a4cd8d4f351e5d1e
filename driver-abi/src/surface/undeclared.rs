//! The symbols libcuda 12.9 and 13.x export that the surface does not declare: each is exported as
//! a stub that logs its name once and returns `CUDA_ERROR_NOT_SUPPORTED` (see [`super::decl`] on
//! moving one into a family). A test checks that declared, built-in and undeclared symbols are
//! exactly the headers' exported symbols.

/// Appends the undeclared symbols to the families and calls the callback with the whole surface.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_undeclared {
    ($callback:path [$($extra:tt)*] $($families:tt)*) => {
        $callback! {
            $($extra)*
            $($families)*
            undeclared {
                cuArray3DCreate cuArray3DCreate_v2 cuArray3DGetDescriptor cuArray3DGetDescriptor_v2
                cuArrayCreate cuArrayCreate_v2 cuArrayDestroy cuArrayGetDescriptor
                cuArrayGetDescriptor_v2 cuArrayGetMemoryRequirements cuArrayGetPlane
                cuArrayGetSparseProperties cuCheckpointProcessCheckpoint
                cuCheckpointProcessGetRestoreThreadId cuCheckpointProcessGetState
                cuCheckpointProcessLock cuCheckpointProcessRestore cuCheckpointProcessUnlock
                cuCoredumpGetAttribute cuCoredumpGetAttributeGlobal cuCoredumpSetAttribute
                cuCoredumpSetAttributeGlobal cuCtxDisablePeerAccess cuCtxEnablePeerAccess
                cuCtxFromGreenCtx cuCtxGetDevResource cuCtxGetExecAffinity cuCtxRecordEvent
                cuCtxWaitEvent cuDestroyExternalMemory cuDestroyExternalSemaphore
                cuDevResourceGenerateDesc cuDevSmResourceSplitByCount cuDeviceGetDefaultMemPool
                cuDeviceGetDevResource cuDeviceGetExecAffinitySupport
                cuDeviceGetLuid cuDeviceGetMemPool cuDeviceGetNvSciSyncAttributes
                cuDeviceGetProperties cuDeviceGetTexture1DLinearMaxWidth
                cuDeviceRegisterAsyncNotification  cuDeviceSetMemPool
                cuDeviceUnregisterAsyncNotification cuEGLStreamConsumerAcquireFrame
                cuEGLStreamConsumerConnect cuEGLStreamConsumerConnectWithFlags
                cuEGLStreamConsumerDisconnect cuEGLStreamConsumerReleaseFrame
                cuEGLStreamProducerConnect cuEGLStreamProducerDisconnect
                cuEGLStreamProducerPresentFrame cuEGLStreamProducerReturnFrame
                cuEventCreateFromEGLSync cuExternalMemoryGetMappedBuffer
                cuExternalMemoryGetMappedMipmappedArray cuFlushGPUDirectRDMAWrites cuGLCtxCreate
                cuGLCtxCreate_v2 cuGLGetDevices cuGLGetDevices_v2 cuGLInit cuGLMapBufferObject
                cuGLMapBufferObjectAsync cuGLMapBufferObjectAsync_v2
                cuGLMapBufferObjectAsync_v2_ptsz cuGLMapBufferObject_v2 cuGLMapBufferObject_v2_ptds
                cuGLRegisterBufferObject cuGLSetBufferObjectMapFlags cuGLUnmapBufferObject
                cuGLUnmapBufferObjectAsync cuGLUnregisterBufferObject cuGraphAddBatchMemOpNode
                cuGraphAddExternalSemaphoresSignalNode cuGraphAddExternalSemaphoresWaitNode
                cuGraphAddMemAllocNode cuGraphAddMemFreeNode cuGraphBatchMemOpNodeGetParams
                cuGraphBatchMemOpNodeSetParams cuGraphConditionalHandleCreate cuGraphDebugDotPrint
                cuGraphExecBatchMemOpNodeSetParams cuGraphExecChildGraphNodeSetParams
                cuGraphExecExternalSemaphoresSignalNodeSetParams
                cuGraphExecExternalSemaphoresWaitNodeSetParams cuGraphExecNodeSetParams
                cuGraphExternalSemaphoresSignalNodeGetParams
                cuGraphExternalSemaphoresSignalNodeSetParams
                cuGraphExternalSemaphoresWaitNodeGetParams
                cuGraphExternalSemaphoresWaitNodeSetParams cuGraphKernelNodeCopyAttributes
                cuGraphKernelNodeGetAttribute cuGraphKernelNodeSetAttribute
                cuGraphMemAllocNodeGetParams cuGraphMemFreeNodeGetParams cuGraphNodeGetEnabled
                cuGraphNodeSetEnabled cuGraphNodeSetParams
                 cuGraphicsEGLRegisterImage cuGraphicsGLRegisterBuffer
                cuGraphicsGLRegisterImage cuGraphicsMapResources cuGraphicsMapResources_ptsz
                cuGraphicsResourceGetMappedEglFrame cuGraphicsResourceGetMappedMipmappedArray
                cuGraphicsResourceGetMappedPointer cuGraphicsResourceGetMappedPointer_v2
                cuGraphicsResourceSetMapFlags cuGraphicsResourceSetMapFlags_v2
                cuGraphicsSubResourceGetMappedArray cuGraphicsUnmapResources
                cuGraphicsUnmapResources_ptsz cuGraphicsUnregisterResource
                cuGraphicsVDPAURegisterOutputSurface cuGraphicsVDPAURegisterVideoSurface
                cuGreenCtxCreate cuGreenCtxDestroy cuGreenCtxGetDevResource cuGreenCtxRecordEvent
                cuGreenCtxStreamCreate cuGreenCtxWaitEvent cuImportExternalMemory
                cuImportExternalSemaphore cuIpcCloseMemHandle cuIpcGetEventHandle cuIpcGetMemHandle
                cuIpcOpenEventHandle cuIpcOpenMemHandle cuIpcOpenMemHandle_v2
                cuLaunchCooperativeKernelMultiDevice cuLibraryGetManaged cuLibraryGetUnifiedFunction
                cuLogsCurrent cuLogsDumpToFile cuLogsDumpToMemory cuLogsRegisterCallback
                cuLogsUnregisterCallback   cuMemAllocAsync
                cuMemAllocAsync_ptsz cuMemAllocFromPoolAsync cuMemAllocFromPoolAsync_ptsz
                cuMemBatchDecompressAsync cuMemBatchDecompressAsync_ptsz cuMemFreeAsync
                cuMemFreeAsync_ptsz cuMemGetHandleForAddressRange cuMemMapArrayAsync
                cuMemMapArrayAsync_ptsz cuMemPoolCreate cuMemPoolDestroy cuMemPoolExportPointer
                cuMemPoolExportToShareableHandle cuMemPoolGetAccess cuMemPoolGetAttribute
                cuMemPoolImportFromShareableHandle cuMemPoolImportPointer cuMemPoolSetAccess
                cuMemPoolSetAttribute cuMemPoolTrimTo
                  cuMemRangeGetAttribute
                cuMemRangeGetAttributes cuMemcpy2D cuMemcpy2DAsync cuMemcpy2DUnaligned cuMemcpy3D
                cuMemcpy3DAsync cuMemcpy3DAsync_v2 cuMemcpy3DAsync_v2_ptsz cuMemcpy3DBatchAsync
                cuMemcpy3DBatchAsync_ptsz cuMemcpy3DPeer cuMemcpy3DPeerAsync
                cuMemcpy3DPeerAsync_ptsz cuMemcpy3DPeer_ptds cuMemcpy3D_v2 cuMemcpy3D_v2_ptds
                cuMemcpyAtoA cuMemcpyAtoA_v2 cuMemcpyAtoA_v2_ptds cuMemcpyAtoD cuMemcpyAtoD_v2
                cuMemcpyAtoD_v2_ptds cuMemcpyAtoH cuMemcpyAtoHAsync cuMemcpyAtoHAsync_v2
                cuMemcpyAtoHAsync_v2_ptsz cuMemcpyAtoH_v2 cuMemcpyAtoH_v2_ptds cuMemcpyBatchAsync
                cuMemcpyBatchAsync_ptsz cuMemcpyDtoA cuMemcpyDtoA_v2 cuMemcpyDtoA_v2_ptds
                cuMemcpyDtoD cuMemcpyDtoDAsync cuMemcpyDtoH cuMemcpyDtoHAsync cuMemcpyHtoA
                cuMemcpyHtoAAsync cuMemcpyHtoAAsync_v2 cuMemcpyHtoAAsync_v2_ptsz cuMemcpyHtoA_v2
                cuMemcpyHtoA_v2_ptds cuMemcpyHtoD cuMemcpyHtoDAsync cuMemsetD16 cuMemsetD2D16
                cuMemsetD2D32 cuMemsetD2D8 cuMemsetD32 cuMemsetD8 cuMipmappedArrayCreate
                cuMipmappedArrayDestroy cuMipmappedArrayGetLevel
                cuMipmappedArrayGetMemoryRequirements cuMipmappedArrayGetSparseProperties
                cuModuleGetGlobal cuModuleGetSurfRef cuModuleGetTexRef cuMulticastAddDevice
                cuMulticastBindAddr cuMulticastBindMem cuMulticastCreate cuMulticastGetGranularity
                cuMulticastUnbind cuOccupancyMaxActiveClusters cuOccupancyMaxPotentialClusterSize
                cuProfilerInitialize cuProfilerStart cuProfilerStop cuSignalExternalSemaphoresAsync
                cuSignalExternalSemaphoresAsync_ptsz cuStreamAttachMemAsync
                cuStreamAttachMemAsync_ptsz cuStreamBatchMemOp cuStreamBatchMemOp_ptsz
                cuStreamBatchMemOp_v2 cuStreamBatchMemOp_v2_ptsz cuStreamCopyAttributes
                cuStreamCopyAttributes_ptsz cuStreamGetAttribute cuStreamGetAttribute_ptsz
                cuStreamGetGreenCtx cuStreamSetAttribute cuStreamSetAttribute_ptsz
                cuStreamWriteValue64 cuStreamWriteValue64_ptsz cuStreamWriteValue64_v2
                cuStreamWriteValue64_v2_ptsz
                cuSurfObjectCreate cuSurfObjectDestroy cuSurfObjectGetResourceDesc cuSurfRefGetArray
                cuSurfRefSetArray cuTensorMapEncodeIm2col cuTensorMapEncodeIm2colWide
                cuTensorMapEncodeTiled cuTensorMapReplaceAddress cuTexObjectCreate
                cuTexObjectDestroy cuTexObjectGetResourceDesc cuTexObjectGetResourceViewDesc
                cuTexObjectGetTextureDesc cuTexRefCreate cuTexRefDestroy cuTexRefGetAddress
                cuTexRefGetAddressMode cuTexRefGetAddress_v2 cuTexRefGetArray cuTexRefGetBorderColor
                cuTexRefGetFilterMode cuTexRefGetFlags cuTexRefGetFormat cuTexRefGetMaxAnisotropy
                cuTexRefGetMipmapFilterMode cuTexRefGetMipmapLevelBias cuTexRefGetMipmapLevelClamp
                cuTexRefGetMipmappedArray cuTexRefSetAddress cuTexRefSetAddress2D
                cuTexRefSetAddress2D_v2 cuTexRefSetAddress2D_v3 cuTexRefSetAddressMode
                cuTexRefSetAddress_v2 cuTexRefSetArray cuTexRefSetBorderColor cuTexRefSetFilterMode
                cuTexRefSetFlags cuTexRefSetFormat cuTexRefSetMaxAnisotropy
                cuTexRefSetMipmapFilterMode cuTexRefSetMipmapLevelBias cuTexRefSetMipmapLevelClamp
                cuTexRefSetMipmappedArray
                cuVDPAUCtxCreate cuVDPAUCtxCreate_v2
                cuVDPAUGetDevice cuWaitExternalSemaphoresAsync cuWaitExternalSemaphoresAsync_ptsz
                // New in CUDA 13.x (13.0 to 13.5), not implemented:
                cuCheckpointOperationComplete cuCoredumpDeregisterCompleteCallback
                cuCoredumpDeregisterStartCallback cuCoredumpRegisterCompleteCallback
                cuCoredumpRegisterStartCallback cuDevSmResourceSplit cuDeviceGetCliqueCount
                cuDeviceGetCliqueInfo cuDeviceGetFabricClusterUuid cuDeviceGetHostAtomicCapabilities
                cuDeviceGetP2PAtomicCapabilities cuFabricCpyBatchAsync cuFabricCpyBatchAsync_ptsz
                cuFuncGetParamCount
                  cuGraphNodeGetParams
                 cuGraphNodeSetParams_v2 cuGreenCtxGetId cuKernelGetParamCount
                cuLaunchHostFunc_v2 cuLaunchHostFunc_v2_ptsz cuLogicalEndpointAddDevice
                cuLogicalEndpointBindAddr cuLogicalEndpointBindMem cuLogicalEndpointCreate
                cuLogicalEndpointDestroy cuLogicalEndpointExport cuLogicalEndpointGetLimits
                cuLogicalEndpointIdRelease cuLogicalEndpointIdReserve cuLogicalEndpointImport
                cuLogicalEndpointQuery cuLogicalEndpointUnbind cuMemDiscardAndPrefetchBatchAsync
                cuMemDiscardAndPrefetchBatchAsync_ptsz cuMemDiscardBatchAsync
                cuMemDiscardBatchAsync_ptsz cuMemGetDefaultMemPool cuMemGetLocationInfo
                cuMemGetMemPool cuMemPrefetchBatchAsync cuMemPrefetchBatchAsync_ptsz cuMemSetMemPool
                cuMemcpy3DBatchAsync_v2 cuMemcpy3DBatchAsync_v2_ptsz cuMemcpy3DWithAttributesAsync
                cuMemcpy3DWithAttributesAsync_ptsz cuMemcpyBatchAsync_v2 cuMemcpyBatchAsync_v2_ptsz
                cuMemcpyWithAttributesAsync cuMemcpyWithAttributesAsync_ptsz cuMulticastBindAddr_v2
                cuMulticastBindMem_v2 cuStreamBeginCaptureToCig cuStreamBeginCaptureToCig_ptsz
                cuStreamBeginRecaptureToGraph cuStreamBeginRecaptureToGraph_ptsz
                cuStreamEndCaptureToCig cuStreamEndCaptureToCig_ptsz cuStreamGetDevResource
                cuStreamGetDevResource_ptsz cuTensorMapSetAllocationClass
            }
        }
    };
}
